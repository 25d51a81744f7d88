/**
 * The second primary-database kind, end to end: MariaDB (binlog, ROW/FULL) → Debezium MariaDB
 * connector (Kafka Connect, provide.transaction.metadata=true) → Kafka → cdc-views (source.kafka)
 * → Redis → GraphQL, checked against the views' SQL run on MariaDB itself.
 *
 * The shop schema is examples/shop/schema.mariadb.sql (TIMESTAMP(6) for timestamptz, see there);
 * the views are the shop's, over `<database>.<table>` (shopViews(shopTables(database))).
 *
 * Running our SQL on MariaDB: identifiers are double-quoted (sql_mode ANSI_QUOTES) and literals are
 * cast PostgreSQL-style ('1.2'::numeric), which MariaDB cannot parse; such a cast becomes the bare
 * decimal literal, which has the same type there (a DECIMAL of the literal's scale, so
 * amount * 1.2 keeps scale 3 as in PostgreSQL). Timestamps are read in UTC (time_zone '+00:00').
 *
 * One difference is allowed, and only one: avg(). MariaDB rounds an average to the argument's scale
 * plus div_precision_increment (2 + 4 = 6 digits here), while our views follow PostgreSQL's digits
 * (at least 16). Averages are compared by value, ours rounded half away from zero to MariaDB's
 * scale; every other value must match exactly.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import mysql from 'mysql2/promise';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { startService } from '../../api/service.ts';
import shop, { shopTables, shopViews } from '../../examples/shop/views.config.ts';
import { parseDecimal, formatDecimal } from '../../core/decimal.ts';
import { source } from '../../ingest/source-options.ts';
import { decodePgText, type Value } from '../../core/values.ts';
import { mariadbConnectorConfig } from '../../scripts/kafka-stack/index.ts';
import { keyPrefix } from '../../views/store/keys.ts';
import { connectRedis, deleteByPattern, type RedisClient } from '../../views/store/redis.ts';
import type { Config } from '../../views/config.ts';
import { createRegistry, type CompiledView } from '../../views/registry.ts';
import { kafkaTestNames, startKafkaStack, waitUntilViewsEqual, type KafkaStack, type Row } from '../support/kafka.ts';
import { quietLogger } from '../support/logger.ts';
import { mariadbStatement, transactionsOf, transactionSql } from '../support/workload.ts';

const SCHEMA = readFileSync(new URL('../../examples/shop/schema.mariadb.sql', import.meta.url), 'utf8');
const SEED = `
  INSERT INTO customers VALUES (1, 'c1', 'DE', '2024-01-01 00:00:00.5'), (2, 'c2', NULL, '2024-02-01 00:00:00');
  INSERT INTO products VALUES (1, 'p1', 'books', 12.50, 100, 10), (2, 'p2', 'games', 40.00, 100, 10), (3, 'p3', 'games', 0.03, 100, 10);
  INSERT INTO orders VALUES (1, 1, 'paid', 10.50, '2024-03-01 10:00:00.123456'), (2, 1, 'paid', NULL, '2024-03-02 10:00:00'), (3, 2, 'new', 7.25, '2024-03-03 10:00:00'), (4, 2, 'paid', 150.00, '2024-03-04 10:00:00'), (5, 1, 'paid', 0.01, '2024-03-05 10:00:00');
  INSERT INTO order_items VALUES (1, 1, 1, 2, 12.50), (1, 2, 2, 1, 40.00), (3, 1, 1, 1, 12.50);
`;

let stack: KafkaStack;
let redis: RedisClient;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  stack = await startKafkaStack({ mariadb: true });
  redis = await connectRedis(inject('redisUrl'));
}, 300_000);

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
}, 120_000);

afterAll(async () => {
  await redis?.quit();
  await stack?.stop();
}, 120_000);

/** A view's SQL in MariaDB's dialect (see the header): only literal casts need rewriting. */
function mariadbSql(sql: string): string {
  // Code point order: PostgreSQL's "C" collation is MariaDB's binary utf8mb4 collation.
  const rewritten = sql.replace(/'(-?\d+(?:\.\d+)?)'::numeric/g, '$1').replaceAll(' COLLATE "C"', ' COLLATE utf8mb4_bin');
  if (rewritten.includes('::')) throw new Error(`Expected only numeric literal casts in the view SQL, but found another cast:\n${sql}`);
  return rewritten;
}

/** A view's rows computed by MariaDB from the view's SQL, decoded like the service decodes values. */
async function readViewOverMariaDb(db: mysql.Connection, view: CompiledView): Promise<Row[]> {
  const [rows] = await db.query<mysql.RowDataPacket[]>(mariadbSql(view.sql));
  return rows.map((r) => {
    const row: Record<string, Value> = {};
    for (const f of view.fields) {
      const text = r[f.name] as string | null;
      row[f.name] = text === null ? null : decodePgText(f.type, text);
    }
    return row;
  });
}

/** A decimal rounded half away from zero to `scale` digits. */
function roundDecimal(text: string, scale: number): string {
  const { unscaled, scale: from } = parseDecimal(text);
  if (from <= scale) return formatDecimal({ unscaled: unscaled * 10n ** BigInt(scale - from), scale });
  const divisor = 10n ** BigInt(from - scale);
  const negative = unscaled < 0n;
  const magnitude = negative ? -unscaled : unscaled;
  const rounded = (magnitude + divisor / 2n) / divisor;
  return formatDecimal({ unscaled: negative ? -rounded : rounded, scale });
}

describe('Debezium (MariaDB connector) over Kafka', () => {
  it('after random workloads on MariaDB (upserts, key changes, truncates, rollbacks) every view equals its SQL run on MariaDB', async () => {
    const maria = stack.mariadb!;
    const names = kafkaTestNames('kmdb');
    const database = names.name;
    await maria.sql(`CREATE DATABASE ${database}`);
    cleanups.push(async () => {
      await maria.sql(`DROP DATABASE IF EXISTS ${database}`);
      await deleteByPattern(redis, `${keyPrefix(names.name)}:*`);
    });
    const options = { host: maria.host, port: maria.port, user: maria.user, password: maria.password, database };
    // The workload's connection: multi-statement transactions, UTC wall-clock timestamps.
    const writer = await mysql.createConnection({ ...options, multipleStatements: true });
    await writer.query(`SET SESSION time_zone = '+00:00'`);
    // The oracle's: every value as the server's text, double-quoted identifiers.
    const oracle = await mysql.createConnection({ ...options, typeCast: (field) => field.string() });
    await oracle.query(`SET SESSION sql_mode = 'ANSI_QUOTES', time_zone = '+00:00'`);
    cleanups.push(async () => {
      await writer.end();
      await oracle.end();
    });
    await writer.query(SCHEMA);
    await writer.query(SEED);
    const [[precision]] = await oracle.query<mysql.RowDataPacket[]>('SELECT @@div_precision_increment AS p');
    const avgScale = 2 + Number(precision!['p']); // avg() of the DECIMAL(…, 2) columns

    const tables = ['customers', 'products', 'orders', 'order_items'].map((t) => `${database}.${t}`);
    await stack.connect.register(
      names.connector,
      mariadbConnectorConfig({
        databaseUrl: `mysql://${maria.replicationUser.user}:${encodeURIComponent(maria.replicationUser.password)}@${maria.host}:${maria.port}/`,
        topicPrefix: names.topicPrefix,
        databases: [database],
        tables,
        serverId: 5400 + Math.floor(Math.random() * 1000),
        schemaHistoryBrokers: stack.brokers,
        heartbeatIntervalMs: 1000,
      }),
    );
    cleanups.push(() => stack.connect.remove(names.connector));
    await stack.connect.waitForRunning(names.connector);

    const config = {
      ...shop,
      reactions: {},
      name: names.name,
      source: source.kafka({ brokers: stack.brokers, topicPrefix: names.topicPrefix, groupId: names.groupId, transactions: true }),
      redis: { url: inject('redisUrl') },
      views: shopViews(shopTables(database)),
    } as Config;
    const registry = createRegistry(config);
    expect(registry.views.map((v) => v.sql).join('\n')).toContain(`FROM "${database}"."orders"`);
    const service = await startService({ config, port: 0, logger: quietLogger() });
    cleanups.push(() => service.stop());

    // Fields holding an avg(): a view's own, or those a view over a view passes on.
    const averages = new Map<string, Set<string>>();
    for (const v of registry.views) {
      const own = (v.definition.select ?? []).filter((f) => f.node.kind === 'aggregate' && f.node.fn === 'avg').map((f) => f.name);
      const inherited = v.definition.select === null ? v.dependsOn.flatMap((d) => [...(averages.get(d) ?? [])]) : [];
      averages.set(v.name, new Set([...own, ...inherited]));
    }
    const comparison = {
      normalize: (view: CompiledView, row: Row): Row => {
        const names = averages.get(view.name)!;
        if (names.size === 0) return row;
        const out = { ...row };
        for (const name of names) {
          const value = out[name];
          if (typeof value === 'string') out[name] = roundDecimal(value, avgScale);
        }
        return out;
      },
    };
    const readExpected = (view: CompiledView): Promise<Row[]> => readViewOverMariaDb(oracle, view);

    await waitUntilViewsEqual(service.url, readExpected, registry, 120_000, comparison);
    await fc.assert(
      fc.asyncProperty(transactionsOf(mariadbStatement, { maxTransactions: 12 }), async (transactions) => {
        for (const t of transactions) await writer.query(transactionSql(t));
        await waitUntilViewsEqual(service.url, readExpected, registry, 60_000, comparison);
      }),
      { numRuns: 25, endOnFailure: true },
    );
  }, 300_000);
});
