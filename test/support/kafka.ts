/**
 * Fixtures for the tests that run Debezium over Kafka for real (scripts/kafka-stack/):
 *
 *   startKafkaStack()        Kafka (KRaft) + Kafka Connect (+ MariaDB), once per test file
 *   kafkaTestNames()         a unique deployment / topic prefix / slot / publication / connector per test
 *   startPostgresConnector() the Debezium PostgreSQL connector for one test; stop() removes it and
 *                            drops the replication slot it created
 *   waitUntilViewsEqual()    the oracle for an asynchronous pipeline: poll GraphQL until every view
 *                            equals what the source database computes, then check once more after
 *                            a second of quiet
 *   readMetric()             one value from the service's /metrics
 */
import { randomBytes } from 'node:crypto';
import kafkajs, { type Admin, type Kafka as KafkaClient } from 'kafkajs';
import type pg from 'pg';
import { expect } from 'vitest';
import {
  fetchStack,
  postgresConnectorConfig,
  startConnect,
  startKafka,
  startMariaDb,
  type RunningConnect,
  type RunningKafka,
  type RunningMariaDb,
} from '../../scripts/kafka-stack/index.ts';
import type { CompiledView, Registry } from '../../views/registry.ts';
import { readViewOverGraphql } from './shop.ts';

const { Kafka, logLevel } = kafkajs;

export type Row = Record<string, unknown>;

export interface KafkaStack {
  readonly kafka: RunningKafka;
  readonly connect: RunningConnect;
  /** Started only when asked for. */
  readonly mariadb: RunningMariaDb | null;
  readonly brokers: string[];
  /** A kafkajs client and a connected admin on the broker, for tests that look at topics themselves. */
  readonly client: KafkaClient;
  readonly admin: Admin;
  stop(): Promise<void>;
}

export interface KafkaStackOptions {
  readonly mariadb?: boolean;
  /** Kafka Connect's offset.flush.interval.ms (how much Debezium re-sends after a SIGKILL). */
  readonly offsetFlushIntervalMs?: number;
  readonly log?: (line: string) => void;
}

/** Start Kafka and Kafka Connect (and MariaDB) for one test file; stop() leaves no process or folder behind. */
export async function startKafkaStack(options: KafkaStackOptions = {}): Promise<KafkaStack> {
  const log = options.log ?? ((line: string) => process.stderr.write(`[kafka-stack] ${line}\n`));
  await fetchStack(log);
  const mariadbStarting = options.mariadb ? startMariaDb({ log }) : Promise.resolve(null);
  // Whatever started must stop again, even when something after it fails.
  const started: { stop(): Promise<void> }[] = [];
  try {
    const kafka = await startKafka({ log });
    started.push(kafka);
    const connect = await startConnect({
      brokers: kafka.brokers,
      log,
      ...(options.offsetFlushIntervalMs === undefined ? {} : { offsetFlushIntervalMs: options.offsetFlushIntervalMs }),
    });
    started.unshift(connect);
    const mariadb = await mariadbStarting;
    if (mariadb) started.push(mariadb);
    const client = new Kafka({ clientId: `test-${randomBytes(3).toString('hex')}`, brokers: kafka.brokers, logLevel: logLevel.ERROR });
    const admin = client.admin();
    await admin.connect();
    return {
      kafka,
      connect,
      mariadb,
      brokers: kafka.brokers,
      client,
      admin,
      async stop() {
        await admin.disconnect().catch(() => undefined);
        for (const s of started) await s.stop();
      },
    };
  } catch (error) {
    for (const s of started) await s.stop().catch(() => undefined);
    await mariadbStarting.then((m) => m?.stop()).catch(() => undefined);
    throw error;
  }
}

export interface KafkaTestNames {
  /** The deployment (Redis key prefix), also the database, slot and publication name. */
  readonly name: string;
  /** Debezium's topic.prefix. */
  readonly topicPrefix: string;
  /** The Kafka Connect connector. */
  readonly connector: string;
  /** The service's consumer group. */
  readonly groupId: string;
}

/** Names no other test uses: lower-case identifiers, valid as database, slot, topic and group names. */
export function kafkaTestNames(prefix: string): KafkaTestNames {
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  return { name, topicPrefix: name, connector: name.replace(/_/g, '-'), groupId: `cdc-views-${name}` };
}

export const SHOP_TABLES = ['public.customers', 'public.products', 'public.orders', 'public.order_items'] as const;

export interface PostgresConnector {
  /** Remove the connector, then drop its replication slot once PostgreSQL has released it. */
  stop(): Promise<void>;
}

/**
 * Register the Debezium PostgreSQL connector for one test's database (provide.transaction.metadata
 * is on, see COMMON_CONNECTOR_SETTINGS) and wait until it runs. `admin` is a client on another
 * database of the same server, used to drop the slot afterwards.
 */
export async function startPostgresConnector(
  connect: RunningConnect,
  admin: pg.Client,
  databaseUrl: string,
  names: KafkaTestNames,
  tables: readonly string[] = SHOP_TABLES,
  /** More connector settings (win over the defaults). */
  extra: Readonly<Record<string, string>> = {},
): Promise<PostgresConnector> {
  await connect.register(
    names.connector,
    postgresConnectorConfig({
      databaseUrl,
      topicPrefix: names.topicPrefix,
      tables,
      slotName: names.name,
      publicationName: names.name,
      heartbeatIntervalMs: 1000,
      extra,
    }),
  );
  await connect.waitForRunning(names.connector);
  return {
    async stop() {
      await connect.remove(names.connector);
      await dropSlot(admin, names.name);
    },
  };
}

/** Drop a replication slot once nothing streams from it any more (the connector's task stops asynchronously). */
export async function dropSlot(admin: pg.Client, slot: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await admin.query<{ active: boolean | string }>('SELECT active FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    if (rows.length === 0) return;
    const active = rows[0]!.active === true || rows[0]!.active === 't';
    if (!active) {
      await admin.query('SELECT pg_drop_replication_slot($1)', [slot]).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) throw new Error(`Expected replication slot ${slot} to be released within ${timeoutMs} ms, but it is still active`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---------------------------------------------------------------------------------------------
// Topics

/** One Kafka record as text. */
export interface TopicRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers: Readonly<Record<string, string>>;
}

/** Every record of the given topics, from the beginning up to their current end. */
export async function readTopics(stack: KafkaStack, topics: readonly string[]): Promise<TopicRecord[]> {
  const ends = new Map<string, bigint>();
  for (const topic of topics) {
    for (const o of await stack.admin.fetchTopicOffsets(topic)) if (BigInt(o.high) > 0n) ends.set(`${topic}:${o.partition}`, BigInt(o.high) - 1n);
  }
  const records: TopicRecord[] = [];
  if (ends.size === 0) return records;
  const consumer = stack.client.consumer({ groupId: `read-${Math.random().toString(16).slice(2)}`, allowAutoTopicCreation: false });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [...topics], fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Expected to read ${topics.join(', ')} to their end within 60 s`)), 60_000);
      void consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          records.push({
            topic,
            partition,
            offset: message.offset,
            key: message.key?.toString('utf8') ?? null,
            value: message.value?.toString('utf8') ?? null,
            headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([name, v]) => [name, String(v)])),
          });
          const stream = `${topic}:${partition}`;
          if (ends.get(stream) === BigInt(message.offset)) ends.delete(stream);
          if (ends.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return records;
}

// ---------------------------------------------------------------------------------------------
// The oracle

export interface ViewComparison {
  /**
   * Applied to both sides' rows before they are compared (e.g. MariaDB's avg() scale). Rows of
   * both sides are already sorted by the view's key.
   */
  readonly normalize?: (view: CompiledView, row: Row) => Row;
}

function sortByKey(view: CompiledView, rows: readonly Row[]): Row[] {
  const keyOf = (r: Row): string => JSON.stringify(view.keyFields.map((f) => r[f.name] ?? null));
  return [...rows].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
}

interface Mismatch {
  readonly view: CompiledView;
  readonly actual: Row[];
  readonly expected: Row[];
}

async function firstMismatch(
  url: string,
  readExpected: (view: CompiledView) => Promise<Row[]>,
  registry: Registry,
  comparison: ViewComparison,
): Promise<Mismatch | null> {
  const normalize = (view: CompiledView, rows: readonly Row[]): Row[] =>
    sortByKey(view, rows).map((r) => (comparison.normalize ? comparison.normalize(view, r) : r));
  for (const view of registry.views) {
    // A view still being built is not served: not equal yet.
    const unavailable = (error: unknown): Row[] => {
      if (String(error).includes('"VIEW_UNAVAILABLE"')) return [{ unavailable: String(error) }];
      throw error;
    };
    const [actual, expected] = await Promise.all([readViewOverGraphql(url, view).catch(unavailable), readExpected(view)]);
    const a = normalize(view, actual);
    const e = normalize(view, expected);
    if (JSON.stringify(a) !== JSON.stringify(e)) return { view, actual: a, expected: e };
  }
  return null;
}

/**
 * Wait until every view read through GraphQL equals `readExpected(view)` (the view's SQL on the
 * source database), then check once more after about a second of quiet, so that a late duplicate or
 * a change still in flight cannot slip by. On timeout, fail with the diff of the first view that
 * differs.
 */
export async function waitUntilViewsEqual(
  url: string,
  readExpected: (view: CompiledView) => Promise<Row[]>,
  registry: Registry,
  timeoutMs: number,
  comparison: ViewComparison = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let mismatch: Mismatch | null = null;
  while (Date.now() < deadline) {
    mismatch = await firstMismatch(url, readExpected, registry, comparison);
    if (mismatch === null) {
      await new Promise((r) => setTimeout(r, 1000));
      mismatch = await firstMismatch(url, readExpected, registry, comparison);
      if (mismatch === null) return;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  mismatch ??= await firstMismatch(url, readExpected, registry, comparison);
  if (mismatch === null) return;
  expect(mismatch.actual, `view ${mismatch.view.name} (GraphQL) should equal its SQL within ${timeoutMs} ms`).toEqual(mismatch.expected);
}

// ---------------------------------------------------------------------------------------------
// Metrics

/** The sum of a metric's samples on the service's /metrics (0 when absent). */
export async function readMetric(graphqlUrl: string, name: string): Promise<number> {
  const text = await (await fetch(graphqlUrl.replace(/\/graphql$/, '/metrics'))).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}
