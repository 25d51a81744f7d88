/**
 * The real stack end to end: Kafka (KRaft) + Kafka Connect + Debezium from scripts/kafka-stack/
 * (PostgreSQL connector 3.6.1, MariaDB connector 3.5.0),
 * PostgreSQL from the global setup and a throwaway MariaDB. One multi-statement transaction per database
 * must arrive as c/u/d events, a tombstone, and BEGIN/END transaction records; after Connect restarts
 * (SIGTERM, then SIGKILL) the connectors come back RUNNING and new changes still flow.
 *
 * The records consumed are the source of test/fixtures/debezium-captured/*.jsonl (written when missing, or
 * when CDC_VIEWS_CAPTURE_FIXTURES=1).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import type { Admin } from 'kafkajs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import {
  DEBEZIUM_MARIADB_VERSION,
  DEBEZIUM_VERSION,
  fetchStack,
  mariadbConnectorConfig,
  postgresConnectorConfig,
  startConnect,
  startKafka,
  startMariaDb,
  type RunningConnect,
  type RunningKafka,
  type RunningMariaDb,
} from '../../scripts/kafka-stack/index.ts';

const { Kafka, logLevel } = kafkajs;

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'debezium-captured');
const PG_VERSION = DEBEZIUM_VERSION.replace(/\.Final$/, '');
const MARIADB_VERSION = DEBEZIUM_MARIADB_VERSION.replace(/\.Final$/, '');
const id = randomBytes(3).toString('hex');
const log = (line: string): void => console.log(`[kafka-stack.test] ${line}`);

/** A consumed record as it was on the wire: key and value are the raw JSON text (null for a tombstone). */
interface Captured {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly timestamp: string;
  readonly key: string | null;
  readonly value: string | null;
  readonly headers: Readonly<Record<string, string>>;
}

// Envelope shapes, only as far as the assertions read them.
interface Envelope {
  payload: {
    op: string;
    before: Record<string, unknown> | null;
    after: Record<string, unknown> | null;
    source: Record<string, unknown>;
    transaction: { id: string; total_order: number; data_collection_order: number } | null;
  };
}
interface TxnRecord {
  payload: {
    status: 'BEGIN' | 'END';
    id: string;
    event_count: number | null;
    data_collections: Array<{ data_collection: string; event_count: number }> | null;
  };
}

const parse = <T>(text: string | null): T => JSON.parse(text ?? 'null') as T;
const keyId = (r: Captured): unknown => parse<{ payload: { id: unknown } }>(r.key).payload.id;

let kafka: RunningKafka | undefined;
let connect: RunningConnect | undefined;
let maria: RunningMariaDb | undefined;
let admin: Admin | undefined;
let client: InstanceType<typeof Kafka> | undefined;
const timings: Record<string, number> = {};

async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  const began = Date.now();
  try {
    return await f();
  } finally {
    timings[what] = (Date.now() - began) / 1000;
    log(`${what}: ${timings[what]?.toFixed(1)} s`);
  }
}

async function waitForTopics(topics: readonly string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let existing: string[] = [];
  while (Date.now() < deadline) {
    existing = await admin!.listTopics();
    if (topics.every((t) => existing.includes(t))) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(
    `Expected topics ${topics.join(', ')} to exist within ${timeoutMs} ms, but only found: ${existing.join(', ')}`,
  );
}

/** Read the topics from the beginning with a fresh consumer group until `done` says enough arrived. */
async function consume(
  topics: readonly string[],
  done: (records: readonly Captured[]) => boolean,
  timeoutMs = 60_000,
): Promise<Captured[]> {
  await waitForTopics(topics);
  const records: Captured[] = [];
  const consumer = client!.consumer({
    groupId: `stack-test-${id}-${randomBytes(3).toString('hex')}`,
    allowAutoTopicCreation: false,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [...topics], fromBeginning: true });
    let resolveDone: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => (resolveDone = resolve));
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(message.headers ?? {})) {
          headers[name] = Array.isArray(value)
            ? value.map(String).join(',')
            : value === undefined
              ? ''
              : value.toString('utf8');
        }
        records.push({
          topic,
          partition,
          offset: message.offset,
          timestamp: message.timestamp,
          key: message.key ? message.key.toString('utf8') : null,
          value: message.value ? message.value.toString('utf8') : null,
          headers,
        });
        if (done(records)) resolveDone();
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>(
      (resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)),
    );
    const outcome = await Promise.race([finished.then(() => 'done' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      const summary = records.map(
        (r) =>
          `${r.topic}@${r.offset} key=${r.key?.slice(-40) ?? 'null'} value=${r.value?.slice(0, 200) ?? 'null'}`,
      );
      throw new Error(
        `Expected the records to arrive on ${topics.join(', ')} within ${timeoutMs} ms, but got only:\n${summary.join('\n')}`,
      );
    }
    return records;
  } finally {
    await consumer.disconnect();
  }
}

function ops(records: readonly Captured[], topic: string): string[] {
  return records
    .filter((r) => r.topic === topic)
    .map((r) =>
      r.value === null
        ? `tombstone(${String(keyId(r))})`
        : `${parse<Envelope>(r.value).payload.op}(${String(keyId(r))})`,
    );
}

/** JSON Lines with key and value embedded verbatim, so 64-bit numbers keep every digit (parse with lossless-json). */
function writeFixture(name: string, records: readonly Captured[]): void {
  const path = join(FIXTURES, name);
  if (existsSync(path) && process.env['CDC_VIEWS_CAPTURE_FIXTURES'] !== '1') return;
  mkdirSync(FIXTURES, { recursive: true });
  const lines = records.map(
    (r) =>
      `{"topic":${JSON.stringify(r.topic)},"partition":${r.partition},"offset":${r.offset},"timestamp":${r.timestamp},` +
      `"headers":${JSON.stringify(r.headers)},"key":${r.key ?? 'null'},"value":${r.value ?? 'null'}}`,
  );
  writeFileSync(path, `${lines.join('\n')}\n`);
  log(`wrote ${path} (${records.length} records)`);
}

/**
 * The records of one transaction in a readable order for the fixture: snapshot reads, BEGIN, the data events
 * (offset order), END, then anything else given (heartbeat, schema change).
 */
function transactionFixture(
  records: readonly Captured[],
  dataTopic: string,
  txnTopic: string,
  extra: readonly Captured[],
): Captured[] {
  const data = records.filter((r) => r.topic === dataTopic);
  const txn = records.filter((r) => r.topic === txnTopic);
  const begin = txn.filter((r) => parse<TxnRecord>(r.value).payload.status === 'BEGIN');
  const end = txn.filter((r) => parse<TxnRecord>(r.value).payload.status === 'END');
  const snapshot = data.filter((r) => r.value !== null && parse<Envelope>(r.value).payload.op === 'r');
  const changes = data.filter((r) => !snapshot.includes(r));
  return [...snapshot, ...begin, ...changes, ...end, ...extra];
}

// ---------------------------------------------------------------------------------------------

const pgDatabase = `stack_test_${id}`;
const pgSlot = `stack_test_${id}`;
const pgPrefix = `pg_${id}`;
const pgConnector = `pg-${id}`;
const pgTopic = `${pgPrefix}.public.items`;
const pgTxnTopic = `${pgPrefix}.transaction`;
let pgAdmin: pg.Client | undefined;
let pgApp: pg.Client | undefined;
let pgUrl = '';

const mdbDatabase = `stack_test_${id}`;
const mdbPrefix = `mdb_${id}`;
const mdbConnector = `mdb-${id}`;
const mdbTopic = `${mdbPrefix}.${mdbDatabase}.items`;
const mdbTxnTopic = `${mdbPrefix}.transaction`;

describe('kafka-stack: Kafka + Connect + Debezium, for real', () => {
  beforeAll(async () => {
    const began = Date.now();
    await timed('fetchStack (cold or cached)', () => fetchStack(log));
    const mariaStarting = timed('startMariaDb', () => startMariaDb({ log }));
    kafka = await timed('startKafka', () => startKafka({ log }));
    connect = await timed('startConnect', () => startConnect({ brokers: kafka!.brokers, log }));
    maria = await mariaStarting;
    client = new Kafka({ clientId: `stack-test-${id}`, brokers: kafka.brokers, logLevel: logLevel.ERROR });
    admin = client.admin();
    await admin.connect();

    const url = new URL(inject('databaseUrl'));
    pgAdmin = new pg.Client({ connectionString: url.href });
    await pgAdmin.connect();
    await pgAdmin.query(`CREATE DATABASE ${pgDatabase}`);
    url.pathname = `/${pgDatabase}`;
    pgUrl = url.href;
    pgApp = new pg.Client({ connectionString: pgUrl });
    await pgApp.connect();
    log(`beforeAll: ${((Date.now() - began) / 1000).toFixed(1)} s`);
  }, 600_000);

  afterAll(async () => {
    const began = Date.now();
    await admin?.disconnect().catch(() => undefined);
    if (connect) {
      await connect.remove(pgConnector).catch(() => undefined);
      await connect.remove(mdbConnector).catch(() => undefined);
      await connect.stop();
    }
    await pgApp?.end().catch(() => undefined);
    if (pgAdmin) {
      // The slot is released once the task has stopped; drop it so it retains no WAL.
      for (let attempt = 0; attempt < 40; attempt++) {
        const { rows } = await pgAdmin.query<{ active: boolean }>(
          'SELECT active FROM pg_replication_slots WHERE slot_name = $1',
          [pgSlot],
        );
        if (rows.length === 0) break;
        if (!rows[0]?.active) {
          await pgAdmin.query('SELECT pg_drop_replication_slot($1)', [pgSlot]);
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      await pgAdmin.query(`DROP DATABASE IF EXISTS ${pgDatabase} WITH (FORCE)`);
      const { rows } = await pgAdmin.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
        pgSlot,
      ]);
      await pgAdmin.end();
      expect(rows, 'the replication slot was dropped').toHaveLength(0);
    }
    await kafka?.stop();
    await maria?.stop();
    log(`afterAll: ${((Date.now() - began) / 1000).toFixed(1)} s; timings ${JSON.stringify(timings)}`);
  }, 120_000);

  test('PostgreSQL: one transaction arrives as c/c/u/d + tombstone between BEGIN and END', async () => {
    await pgApp!.query(
      `CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2), qty bigint, updated_at timestamptz NOT NULL DEFAULT now());
       INSERT INTO items (id, name, price, qty) VALUES (1, 'snapshot row', 1.50, 9007199254740993)`,
    );
    await timed('PG connector RUNNING', async () => {
      await connect!.register(
        pgConnector,
        postgresConnectorConfig({
          databaseUrl: pgUrl,
          topicPrefix: pgPrefix,
          tables: ['public.items'],
          slotName: pgSlot,
          publicationName: `stack_test_${id}`,
          heartbeatIntervalMs: 1000,
        }),
      );
      await connect!.waitForRunning(pgConnector);
    });
    // The snapshot read proves the pipeline is live before the transaction is written.
    await timed('PG snapshot record', () => consume([pgTopic], (rs) => rs.length >= 1));

    await pgApp!.query(
      `BEGIN;
       INSERT INTO items (id, name, price, qty) VALUES (2, 'two', 2.00, 2);
       INSERT INTO items (id, name, price, qty) VALUES (3, 'three', 3.33, 3);
       UPDATE items SET name = 'two, updated', price = 22.22 WHERE id = 2;
       DELETE FROM items WHERE id = 3;
       COMMIT;`,
    );
    const heartbeatTopic = `__debezium-heartbeat.${pgPrefix}`;
    const records = await timed('PG transaction consumed', () =>
      consume([pgTopic, pgTxnTopic, heartbeatTopic], (rs) => {
        const ends = rs.filter((r) => r.topic === pgTxnTopic && r.value?.includes('"END"')).length;
        return (
          ends >= 1 &&
          rs.filter((r) => r.topic === pgTopic).length >= 6 &&
          rs.some((r) => r.topic === heartbeatTopic)
        );
      }),
    );

    expect(ops(records, pgTopic)).toEqual(['r(1)', 'c(2)', 'c(3)', 'u(2)', 'd(3)', 'tombstone(3)']);
    const changes = records
      .filter((r) => r.topic === pgTopic && r.value !== null)
      .map((r) => parse<Envelope>(r.value).payload);
    const [snap, c2, c3, u2, d3] = changes;
    expect(snap?.source['snapshot']).toBe('last');
    expect(c2?.after).toMatchObject({ id: 2, name: 'two', qty: 2 });
    expect(u2?.after).toMatchObject({ id: 2, name: 'two, updated' });
    expect(u2?.before).toBeNull(); // REPLICA IDENTITY DEFAULT
    expect(d3?.after).toBeNull();
    // Only the key is real; nullable columns are null, NOT NULL ones get a zero value (see the fixtures' README).
    expect(d3?.before).toMatchObject({ id: 3, name: '', price: null, qty: null });
    expect(c3?.source['connector']).toBe('postgresql');

    // PostgreSQL's transaction id is "<txId>:<LSN of that record>" (DBZ-5329): BEGIN carries the first change's LSN,
    // each change its own, END the commit's. Only the txId part is the same across the transaction.
    const txn = records.filter((r) => r.topic === pgTxnTopic).map((r) => parse<TxnRecord>(r.value).payload);
    const begin = txn.find((t) => t.status === 'BEGIN');
    const end = txn.find((t) => t.status === 'END');
    expect(begin?.id).toMatch(/^\d+:\d+$/);
    const txId = begin!.id.split(':')[0];
    expect(end).toMatchObject({
      event_count: 4,
      data_collections: [{ data_collection: 'public.items', event_count: 4 }],
    });
    expect(end!.id.split(':')[0]).toBe(txId);
    expect(changes.slice(1).map((c) => c.transaction)).toEqual(
      [1, 2, 3, 4].map((n) => ({
        id: expect.stringMatching(new RegExp(`^${txId}:\\d+$`)),
        total_order: n,
        data_collection_order: n,
      })),
    );
    expect(c2?.transaction?.id).toBe(begin!.id);
    expect(changes.slice(1).map((c) => String(c.source['txId']))).toEqual([txId, txId, txId, txId]);

    const heartbeat = records.filter((r) => r.topic === heartbeatTopic).slice(0, 1);
    writeFixture(
      `pg-${PG_VERSION}-txn.records.jsonl`,
      transactionFixture(records, pgTopic, pgTxnTopic, heartbeat),
    );
  }, 240_000);

  test('MariaDB (Debezium MariaDB connector): the same transaction, the same shape', async () => {
    await maria!.sql(
      `CREATE DATABASE ${mdbDatabase};
       CREATE TABLE ${mdbDatabase}.items (id int PRIMARY KEY, name varchar(100) NOT NULL, price decimal(10,2), qty bigint, updated_at timestamp(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB;
       INSERT INTO ${mdbDatabase}.items (id, name, price, qty) VALUES (1, 'snapshot row', 1.50, 9007199254740993);`,
    );
    await timed('MariaDB connector RUNNING', async () => {
      await connect!.register(
        mdbConnector,
        mariadbConnectorConfig({
          databaseUrl: `mysql://${maria!.replicationUser.user}:${encodeURIComponent(maria!.replicationUser.password)}@127.0.0.1:${maria!.port}/`,
          topicPrefix: mdbPrefix,
          databases: [mdbDatabase],
          tables: [`${mdbDatabase}.items`],
          serverId: 5400 + Math.floor(Math.random() * 1000),
          schemaHistoryBrokers: kafka!.brokers,
          heartbeatIntervalMs: 1000,
        }),
      );
      await connect!.waitForRunning(mdbConnector);
    });
    await timed('MariaDB snapshot record', () => consume([mdbTopic], (rs) => rs.length >= 1));

    await maria!.sql(
      `START TRANSACTION;
       INSERT INTO items (id, name, price, qty) VALUES (2, 'two', 2.00, 2);
       INSERT INTO items (id, name, price, qty) VALUES (3, 'three', 3.33, 3);
       UPDATE items SET name = 'two, updated', price = 22.22 WHERE id = 2;
       DELETE FROM items WHERE id = 3;
       COMMIT;`,
      mdbDatabase,
    );
    const records = await timed('MariaDB transaction consumed', () =>
      consume([mdbTopic, mdbTxnTopic, mdbPrefix], (rs) => {
        const ends = rs.filter((r) => r.topic === mdbTxnTopic && r.value?.includes('"END"')).length;
        return (
          ends >= 1 &&
          rs.filter((r) => r.topic === mdbTopic).length >= 6 &&
          rs.some((r) => r.topic === mdbPrefix)
        );
      }),
    );

    expect(ops(records, mdbTopic)).toEqual(['r(1)', 'c(2)', 'c(3)', 'u(2)', 'd(3)', 'tombstone(3)']);
    const changes = records
      .filter((r) => r.topic === mdbTopic && r.value !== null)
      .map((r) => parse<Envelope>(r.value).payload);
    const [, c2, , u2, d3] = changes;
    expect(c2?.after).toMatchObject({ id: 2, name: 'two', qty: 2 });
    expect(u2?.before).toMatchObject({ id: 2, name: 'two' }); // binlog_row_image=FULL
    expect(u2?.after).toMatchObject({ id: 2, name: 'two, updated' });
    expect(d3?.before).toMatchObject({ id: 3, name: 'three' });
    expect(d3?.after).toBeNull();
    expect(c2?.source['connector']).toBe('mariadb');

    const txn = records.filter((r) => r.topic === mdbTxnTopic).map((r) => parse<TxnRecord>(r.value).payload);
    const begin = txn.find((t) => t.status === 'BEGIN');
    const end = txn.find((t) => t.status === 'END');
    expect(begin).toBeDefined();
    expect(end).toMatchObject({
      id: begin!.id,
      event_count: 4,
      data_collections: [{ data_collection: `${mdbDatabase}.items`, event_count: 4 }],
    });
    expect(changes.slice(1).map((c) => c.transaction)).toEqual(
      [1, 2, 3, 4].map((n) => ({ id: begin!.id, total_order: n, data_collection_order: n })),
    );

    const schemaChange = records
      .filter((r) => r.topic === mdbPrefix && r.value?.includes('CREATE TABLE'))
      .slice(0, 1);
    writeFixture(
      `mariadb-${MARIADB_VERSION}-txn.records.jsonl`,
      transactionFixture(records, mdbTopic, mdbTxnTopic, schemaChange),
    );
  }, 240_000);

  for (const kill of [false, true]) {
    const how = kill ? 'SIGKILL' : 'SIGTERM';
    const rowId = kill ? 11 : 10;
    test(`restart(${kill ? '{ kill: true }' : ''}) (${how}): both connectors come back RUNNING and new changes flow`, async () => {
      await timed(`Connect restart (${how})`, () => connect!.restart({ kill }));
      await timed(`connectors RUNNING after ${how}`, async () => {
        await connect!.waitForRunning(pgConnector);
        await connect!.waitForRunning(mdbConnector);
      });
      await pgApp!.query(
        `INSERT INTO items (id, name, price, qty) VALUES (${rowId}, 'after ${how}', 10.00, 10)`,
      );
      await maria!.sql(
        `INSERT INTO items (id, name, price, qty) VALUES (${rowId}, 'after ${how}', 10.00, 10)`,
        mdbDatabase,
      );
      const isNewRow = (r: Captured): boolean => r.value !== null && keyId(r) === rowId;
      const records = await timed(`changes after ${how} consumed`, () =>
        consume(
          [pgTopic, mdbTopic],
          (rs) =>
            rs.some((r) => r.topic === pgTopic && isNewRow(r)) &&
            rs.some((r) => r.topic === mdbTopic && isNewRow(r)),
        ),
      );
      for (const topic of [pgTopic, mdbTopic]) {
        const created = records
          .filter((r) => r.topic === topic && isNewRow(r))
          .map((r) => parse<Envelope>(r.value).payload);
        expect(created[0]).toMatchObject({ op: 'c', after: { id: rowId, name: `after ${how}` } });
        // At-least-once: a re-sent event is a duplicate of one already seen, never a different one.
        const seen = records
          .filter((r) => r.topic === topic)
          .map((r) => `${r.key}|${r.value === null ? 'null' : parse<Envelope>(r.value).payload.op}`);
        const resent = seen.length - new Set(seen).size;
        if (resent > 0) log(`${topic}: ${resent} record(s) re-sent after ${how}`);
      }
    }, 240_000);
  }
});
