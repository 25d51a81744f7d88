/**
 * docker-compose.yml cannot run here (no Docker engine), so its structure is checked instead: the services, their
 * ports, environment, healthchecks and start order, and that the connector it registers
 * (deploy/debezium/register-postgres.json) is the one the tests run (`postgresConnectorConfig`).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import {
  composePostgresRegistration,
  DEBEZIUM_VERSION,
  KAFKA_VERSION,
  postgresConnectorConfig,
} from '../../scripts/kafka-stack/index.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number | boolean>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[] | string; disable?: boolean; interval?: string; retries?: number };
}

const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, Service>;
};
const services = compose.services;
const service = (name: string): Service => {
  const s = services[name];
  if (!s)
    throw new Error(
      `Expected docker-compose.yml to define the service '${name}', but found only: ${Object.keys(services).join(', ')}`,
    );
  return s;
};
const env = (name: string): Record<string, string> =>
  Object.fromEntries(Object.entries(service(name).environment ?? {}).map(([k, v]) => [k, String(v)]));
const registration = JSON.parse(
  readFileSync(join(root, 'deploy', 'debezium', 'register-postgres.json'), 'utf8'),
) as {
  name: string;
  config: Record<string, string>;
};

describe('docker-compose.yml', () => {
  test('defines the stack: postgres, kafka, kafka-connect, the connector registration, redis and cdc-views', () => {
    expect(Object.keys(services).sort()).toEqual([
      'cdc-views',
      'connect-register',
      'kafka',
      'kafka-connect',
      'postgres',
      'redis',
    ]);
  });

  test('publishes the usual host ports', () => {
    expect(service('postgres').ports).toEqual(['5432:5432']);
    expect(service('kafka').ports).toEqual(['9092:9092']);
    expect(service('kafka-connect').ports).toEqual(['8083:8083']);
    expect(service('redis').ports).toEqual(['6379:6379']);
    expect(service('cdc-views').ports).toEqual(['4000:4000']);
  });

  test('runs PostgreSQL with logical decoding and the example shop loaded', () => {
    expect(service('postgres').command).toEqual(expect.arrayContaining(['-c', 'wal_level=logical']));
    expect(service('postgres').volumes).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\.\/examples\/shop\/schema\.sql:\/docker-entrypoint-initdb\.d\//),
      ]),
    );
  });

  test('runs Kafka as one KRaft node whose internal topics fit one broker', () => {
    expect(service('kafka').image).toBe(`apache/kafka:${KAFKA_VERSION}`);
    const kafka = env('kafka');
    expect(kafka['KAFKA_PROCESS_ROLES']).toBe('broker,controller');
    expect(kafka['KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR']).toBe('1'); // kafkajs cannot join a group without it
    expect(kafka['KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR']).toBe('1');
    expect(kafka['KAFKA_AUTO_CREATE_TOPICS_ENABLE']).toBe('true');
    expect(Buffer.from(kafka['CLUSTER_ID'] ?? '', 'base64url')).toHaveLength(16);
    // Containers reach the broker as kafka:29092, the host as localhost:9092.
    expect(kafka['KAFKA_ADVERTISED_LISTENERS']).toBe('INTERNAL://kafka:29092,EXTERNAL://localhost:9092');
  });

  test('runs Kafka Connect with the Debezium version the tests use, and the same converters', () => {
    expect(service('kafka-connect').image).toBe(`quay.io/debezium/connect:${DEBEZIUM_VERSION}`);
    const connect = env('kafka-connect');
    expect(connect['BOOTSTRAP_SERVERS']).toBe('kafka:29092');
    expect(connect['KEY_CONVERTER']).toBe('org.apache.kafka.connect.json.JsonConverter');
    expect(connect['VALUE_CONVERTER']).toBe('org.apache.kafka.connect.json.JsonConverter');
    expect(connect['CONNECT_KEY_CONVERTER_SCHEMAS_ENABLE']).toBe('true');
    expect(connect['CONNECT_VALUE_CONVERTER_SCHEMAS_ENABLE']).toBe('true');
    expect(connect['CONNECT_VALUE_CONVERTER_REPLACE_NULL_WITH_DEFAULT']).toBe('false');
    for (const store of ['CONFIG', 'OFFSET', 'STATUS']) {
      expect(connect[`${store}_STORAGE_TOPIC`], store).toBeTruthy();
      expect(connect[`CONNECT_${store}_STORAGE_REPLICATION_FACTOR`], store).toBe('1');
    }
  });

  test('registers the connector once, with a POST of deploy/debezium/register-postgres.json', () => {
    const register = service('connect-register');
    expect(register.volumes).toEqual(['./deploy/debezium:/deploy:ro']);
    const script = [register.command ?? []].flat().join(' ');
    expect(script).toContain('-X POST');
    expect(script).toContain('--data @/deploy/register-postgres.json');
    expect(script).toContain('http://kafka-connect:8083/connectors');
  });

  test('runs Redis with an append-only file and no eviction', () => {
    const command = [service('redis').command ?? []].flat().join(' ');
    expect(command).toContain('--appendonly yes');
    expect(command).toContain('--maxmemory-policy noeviction');
  });

  test('builds cdc-views from the Dockerfile and points it at the other services', () => {
    expect(service('cdc-views').build).toEqual({ context: '.', dockerfile: 'Dockerfile' });
    const app = env('cdc-views');
    expect(app['DATABASE_URL']).toBe(
      `postgres://${env('postgres')['POSTGRES_USER']}:${env('postgres')['POSTGRES_PASSWORD']}@postgres:5432/${env('postgres')['POSTGRES_DB']}`,
    );
    expect(app['REDIS_URL']).toBe('redis://redis:6379');
    expect(app['KAFKA_BROKERS']).toBe('kafka:29092');
    expect(app['HOST']).toBe('0.0.0.0'); // the CLI listens on 127.0.0.1 unless told otherwise
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^FROM node:20-slim$/m);
    expect(dockerfile).toMatch(/^RUN npm ci\b/m);
    expect(dockerfile).toContain(
      'CMD ["npx", "cdc-views", "start", "--config", "examples/shop/views.kafka.config.ts"]',
    );
  });

  test('gives every long-running service a healthcheck', () => {
    for (const name of ['postgres', 'kafka', 'kafka-connect', 'redis', 'cdc-views']) {
      const check = service(name).healthcheck;
      expect(check?.test, name).toBeDefined();
      expect(check?.disable, name).toBeUndefined();
    }
  });

  test('starts each service after what it needs is healthy (or, for the registration, done)', () => {
    const needs = (name: string): Record<string, string> =>
      Object.fromEntries(Object.entries(service(name).depends_on ?? {}).map(([k, v]) => [k, v.condition]));
    expect(needs('kafka-connect')).toEqual({ kafka: 'service_healthy', postgres: 'service_healthy' });
    expect(needs('connect-register')).toEqual({ 'kafka-connect': 'service_healthy' });
    expect(needs('cdc-views')).toEqual({
      postgres: 'service_healthy',
      kafka: 'service_healthy',
      redis: 'service_healthy',
      'connect-register': 'service_completed_successfully',
    });
  });
});

describe('deploy/debezium/register-postgres.json', () => {
  const pg = env('postgres');
  const expected = postgresConnectorConfig({
    databaseUrl: `postgres://${pg['POSTGRES_USER']}:${pg['POSTGRES_PASSWORD']}@postgres:5432/${pg['POSTGRES_DB']}`,
    topicPrefix: registration.config['topic.prefix'] ?? '',
    tables: (registration.config['table.include.list'] ?? '').split(','),
    slotName: registration.config['slot.name'] ?? '',
    publicationName: registration.config['publication.name'] ?? '',
  });

  test('connects to the compose postgres service with its credentials', () => {
    expect(registration.config).toMatchObject({
      'database.hostname': 'postgres',
      'database.port': '5432',
      'database.user': pg['POSTGRES_USER'],
      'database.password': pg['POSTGRES_PASSWORD'],
      'database.dbname': pg['POSTGRES_DB'],
    });
  });

  test('has the settings the decoder relies on, as postgresConnectorConfig sets them', () => {
    const matter = [
      'connector.class',
      'plugin.name',
      'publication.autocreate.mode',
      'snapshot.mode',
      'provide.transaction.metadata',
      'skipped.operations',
      'tombstones.on.delete',
      'key.converter',
      'key.converter.schemas.enable',
      'value.converter',
      'value.converter.schemas.enable',
      'value.converter.replace.null.with.default',
    ];
    const pick = (config: Readonly<Record<string, string>>): Record<string, string | undefined> =>
      Object.fromEntries(matter.map((k) => [k, config[k]]));
    expect(pick(registration.config)).toEqual(pick(expected));
    expect(pick(expected)).toMatchObject({
      'plugin.name': 'pgoutput',
      'provide.transaction.metadata': 'true',
      'skipped.operations': 'none',
      'tombstones.on.delete': 'true',
      'value.converter.replace.null.with.default': 'false',
    });
  });

  test('is exactly what `kafka-stack.ts register-json` prints, and captures the example shop', () => {
    expect(registration).toEqual(composePostgresRegistration());
    expect(registration.config).toEqual(expected);
    expect(registration.config['table.include.list']?.split(',').sort()).toEqual([
      'public.customers',
      'public.order_items',
      'public.orders',
      'public.products',
    ]);
  });
});
