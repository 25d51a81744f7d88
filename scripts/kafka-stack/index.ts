/**
 * The real Kafka + Kafka Connect + Debezium stack for the tests, the demo and CI, without Docker:
 * plain `java` processes on loopback, jars fetched once from Maven Central with `mvn`.
 *
 *   fetchStack()              mvn -q -B dependency:copy-dependencies@lib dependency:unpack@plugins
 *     └─ ~/.cache/cdc-views/stack-4.3.1-3.6.1.Final/        (or $CDC_VIEWS_STACK_CACHE; `.complete` marks it done)
 *          lib/*.jar                     Kafka broker, tools, Connect runtime, JsonConverter, log4j2 + slf4j binding
 *          plugins/debezium-connector-{postgres,mysql}/ (3.6.1), plugins/debezium-connector-mariadb/ (3.5.0)
 *                                        Debezium's `plugin` tar.gz, unpacked; or, if that is not served, each connector
 *                                        jar + its runtime dependencies minus what Connect provides (Kafka, Jackson)
 *
 *   startKafka()              java kafka.tools.StorageTool format  →  java -Xmx512m kafka.Kafka server.properties
 *     └─ KRaft broker+controller on 127.0.0.1:<free>/<free>, in a temp dir; ready when kafkajs admin.listTopics() answers
 *
 *   startConnect({brokers})   java -Xmx1g org.apache.kafka.connect.cli.ConnectDistributed connect.properties
 *     └─ distributed worker (configs, offsets, statuses in RF-1 Kafka topics) with REST on 127.0.0.1:<free>;
 *        ready when GET /health is 200 and the worker logged "Finished starting connectors and tasks".
 *        register → PUT /connectors/<name>/config · waitForRunning → GET …/status · remove → DELETE
 *        restart → stop the JVM (SIGTERM or SIGKILL), start it again on the same topics and port
 *
 *   startMariaDb()            mariadb-install-db  →  mariadbd --log-bin --binlog-format=ROW --binlog-row-image=FULL
 *     └─ on 127.0.0.1:<free>, in a temp dir, root + a `debezium` replication user
 *
 * CLI (scripts/kafka-stack.ts):  npx tsx scripts/kafka-stack.ts fetch|up|register-json
 *
 * One file a part: versions.ts (what is pinned), processes.ts (child processes, shared helpers), fetch.ts (Maven),
 * kafka.ts, connect.ts, mariadb.ts (starting each), connectors.ts (the connector configs). Import them from here.
 */
export {
  DEBEZIUM_CONNECTORS,
  DEBEZIUM_MARIADB_VERSION,
  DEBEZIUM_VERSION,
  KAFKA_VERSION,
  LOG4J_VERSION,
} from './versions.ts';
export type { Log } from './processes.ts';
export { fetchStack, stackCacheDir, type FetchOptions, type StackFiles } from './fetch.ts';
export { startKafka, type KafkaOptions, type RunningKafka } from './kafka.ts';
export {
  startConnect,
  type ConnectOptions,
  type ConnectorStatus,
  type RestartOptions,
  type RunningConnect,
} from './connect.ts';
export { startMariaDb, type MariaDbOptions, type RunningMariaDb } from './mariadb.ts';
export {
  COMMON_CONNECTOR_SETTINGS,
  composePostgresRegistration,
  mariadbConnectorConfig,
  postgresConnectorConfig,
  type ConnectorConfig,
  type MariaDbConnectorOptions,
  type PostgresConnectorOptions,
} from './connectors.ts';
