/**
 * The Debezium connector configs the tests, the bench and docker-compose use: postgresConnectorConfig() and
 * mariadbConnectorConfig(), both on COMMON_CONNECTOR_SETTINGS (the envelope the decoder expects: JsonConverter
 * with schemas, transaction metadata, tombstones), and composePostgresRegistration(), the connector
 * docker-compose.yml registers (deploy/debezium/register-postgres.json). Plain functions: nothing here starts.
 */


/** Settings every connector of this project shares: the envelope the decoder expects. */
export const COMMON_CONNECTOR_SETTINGS = {
  'tasks.max': '1',
  'snapshot.mode': 'initial',
  'provide.transaction.metadata': 'true',
  'skipped.operations': 'none',
  'tombstones.on.delete': 'true',
  'topic.creation.default.replication.factor': '1',
  'topic.creation.default.partitions': '1',
  'key.converter': 'org.apache.kafka.connect.json.JsonConverter',
  'key.converter.schemas.enable': 'true',
  'value.converter': 'org.apache.kafka.connect.json.JsonConverter',
  'value.converter.schemas.enable': 'true',
  'value.converter.replace.null.with.default': 'false',
} as const satisfies Readonly<Record<string, string>>;

export type ConnectorConfig = Readonly<Record<string, string>>;

export interface PostgresConnectorOptions {
  /** `postgres://user:password@host:port/dbname` */
  readonly databaseUrl: string;
  readonly topicPrefix: string;
  /** Schema-qualified (`public.orders`); an unqualified name means `public.<name>`. */
  readonly tables: readonly string[];
  readonly slotName: string;
  readonly publicationName: string;
  /** default 10000 */
  readonly heartbeatIntervalMs?: number;
  /** Anything else, added last (wins). */
  readonly extra?: ConnectorConfig;
}

function parseDatabaseUrl(databaseUrl: string, protocols: readonly string[], what: string): URL {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new Error(
      `${what}: expected a URL like ${protocols[0]}//user:password@host:port/db, but got '${databaseUrl}'.`,
    );
  }
  if (!protocols.includes(url.protocol)) {
    throw new Error(
      `${what}: expected a ${protocols.join(' or ')} URL, but got '${url.protocol}' in '${databaseUrl}'.`,
    );
  }
  return url;
}

/** The Debezium PostgreSQL connector config the tests and docker-compose use. */
export function postgresConnectorConfig(options: PostgresConnectorOptions): ConnectorConfig {
  const url = parseDatabaseUrl(options.databaseUrl, ['postgres:', 'postgresql:'], 'postgresConnectorConfig');
  const dbname = decodeURIComponent(url.pathname.replace(/^\//, '')) || 'postgres';
  const password = decodeURIComponent(url.password);
  return {
    'connector.class': 'io.debezium.connector.postgresql.PostgresConnector',
    'database.hostname': url.hostname,
    'database.port': url.port || '5432',
    'database.user': decodeURIComponent(url.username) || 'postgres',
    ...(password ? { 'database.password': password } : {}),
    'database.dbname': dbname,
    'topic.prefix': options.topicPrefix,
    'plugin.name': 'pgoutput',
    'slot.name': options.slotName,
    'publication.name': options.publicationName,
    'publication.autocreate.mode': 'filtered',
    'table.include.list': options.tables.map((t) => (t.includes('.') ? t : `public.${t}`)).join(','),
    'heartbeat.interval.ms': String(options.heartbeatIntervalMs ?? 10_000),
    ...COMMON_CONNECTOR_SETTINGS,
    ...options.extra,
  };
}

export interface MariaDbConnectorOptions {
  /** `mysql://user:password@host:port/` (or `mariadb://`): the user needs the replication grants. */
  readonly databaseUrl: string;
  readonly topicPrefix: string;
  readonly databases: readonly string[];
  /** `<database>.<table>` */
  readonly tables: readonly string[];
  /** Debezium's replica id (`database.server.id`): unique among the server's replicas, not the server's own id. */
  readonly serverId: number;
  /** Brokers for the schema history topic, as Connect reaches them. */
  readonly schemaHistoryBrokers: readonly string[];
  /** default `<topicPrefix>.schema-history` */
  readonly schemaHistoryTopic?: string;
  /** default 10000 */
  readonly heartbeatIntervalMs?: number;
  readonly extra?: ConnectorConfig;
}

/**
 * The Debezium config for MariaDB, read with Debezium's MariaDB connector (io.debezium.connector.mariadb.MariaDbConnector,
 * DEBEZIUM_MARIADB_VERSION): the MySQL connector 3.6.1 refuses MariaDB 10.11 (see DEBEZIUM_MARIADB_VERSION).
 * Topics: `<prefix>.<database>.<table>`, `<prefix>.transaction`, schema changes on `<prefix>`.
 */
export function mariadbConnectorConfig(options: MariaDbConnectorOptions): ConnectorConfig {
  const url = parseDatabaseUrl(options.databaseUrl, ['mysql:', 'mariadb:'], 'mariadbConnectorConfig');
  return {
    'connector.class': 'io.debezium.connector.mariadb.MariaDbConnector',
    'database.hostname': url.hostname,
    'database.port': url.port || '3306',
    'database.user': decodeURIComponent(url.username),
    'database.password': decodeURIComponent(url.password),
    'database.server.id': String(options.serverId),
    'topic.prefix': options.topicPrefix,
    'database.include.list': options.databases.join(','),
    'table.include.list': options.tables.join(','),
    'include.schema.changes': 'true',
    'schema.history.internal.kafka.bootstrap.servers': options.schemaHistoryBrokers.join(','),
    'schema.history.internal.kafka.topic':
      options.schemaHistoryTopic ?? `${options.topicPrefix}.schema-history`,
    'heartbeat.interval.ms': String(options.heartbeatIntervalMs ?? 10_000),
    ...COMMON_CONNECTOR_SETTINGS,
    ...options.extra,
  };
}

/**
 * The PostgreSQL connector docker-compose.yml registers: the example shop's tables, with the compose host names.
 * `npx tsx scripts/kafka-stack.ts register-json > deploy/debezium/register-postgres.json` writes it.
 */
export function composePostgresRegistration(): { readonly name: string; readonly config: ConnectorConfig } {
  return {
    name: 'cdc-views-shop-postgres',
    config: postgresConnectorConfig({
      databaseUrl: 'postgres://postgres:postgres@postgres:5432/shop',
      topicPrefix: 'shop',
      tables: ['public.customers', 'public.products', 'public.orders', 'public.order_items'],
      slotName: 'cdc_views_shop',
      publicationName: 'cdc_views_shop',
    }),
  };
}
