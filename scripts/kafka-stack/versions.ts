/**
 * The versions the stack pins: Kafka, Debezium (and its MariaDB connector, which lags behind), log4j2 and the
 * Maven dependency plugin, and the Debezium connectors fetched into `plugins/` (fetch.ts, whose cache folder is
 * named after the Kafka and Debezium versions).
 */


export const KAFKA_VERSION = '4.3.1';
/** Debezium 3.6.1.Final is built against Kafka 4.3.0 (`version.kafka` in its pom.xml). */
export const DEBEZIUM_VERSION = '3.6.1.Final';
/** The log4j2 that Kafka 4.3.1 depends on; the slf4j 1.x binding must match it. */
export const LOG4J_VERSION = '2.25.4';
export const MAVEN_DEPENDENCY_PLUGIN = '3.8.1';
/**
 * The MariaDB connector's version. MariaDB is read with `debezium-connector-mariadb`, not the MySQL connector:
 * MySQL connector 3.6.1 takes MariaDB 10.11's VERSION() "10.11.x" for MySQL ≥ 8.4, sends SHOW BINARY LOG STATUS,
 * and fails ("should support SHOW BINARY LOG STATUS but it failed"). The MariaDB connector 3.6.x is not served
 * by the Maven Central this project reaches (3.6.1 and 3.6.0 were asked for: "not found"); 3.5.0.Final is.
 */
export const DEBEZIUM_MARIADB_VERSION = '3.5.0.Final';

/**
 * The Debezium connectors fetched, each a folder under `plugins/` (Connect isolates them from each other). The MySQL
 * connector is fetched for MySQL users; nothing here runs it (MariaDB needs the MariaDB connector, see above).
 */
export const DEBEZIUM_CONNECTORS: ReadonlyArray<{ readonly artifactId: string; readonly version: string }> = [
  { artifactId: 'debezium-connector-postgres', version: DEBEZIUM_VERSION },
  { artifactId: 'debezium-connector-mysql', version: DEBEZIUM_VERSION },
  { artifactId: 'debezium-connector-mariadb', version: DEBEZIUM_MARIADB_VERSION },
];
