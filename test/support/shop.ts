/**
 * Test fixtures around the example shop: a fresh database per test file, a config isolated by its
 * own slot, publication and Redis key prefix, a barrier that waits until the service has applied
 * everything committed before it, and the oracle: every view read through GraphQL must equal the
 * view's own SQL run on PostgreSQL.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { expect } from 'vitest';
import { source } from '../../ingest/source-options.ts';
import { decodePgText, type Value } from '../../core/values.ts';
import { lsnToken } from '../../ingest/pg/postgres-source.ts';
import { checkpointKey, keyPrefix, partsKey } from '../../views/store/keys.ts';
import type { RedisClient } from '../../views/store/redis.ts';
import type { Config } from '../../views/config.ts';
import type { CompiledView, Registry } from '../../views/registry.ts';
import shopConfig from '../../examples/shop/views.config.ts';

export const SHOP_SCHEMA = readFileSync(new URL('../../examples/shop/schema.sql', import.meta.url), 'utf8');
export const SHOP_SEED = readFileSync(new URL('../../examples/shop/seed.sql', import.meta.url), 'utf8');

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/** A text-typed client (no JS Date rounding) with our session settings. */
export async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: url,
    options: '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=3',
    types: { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig,
  });
  await client.connect();
  return client;
}

/** Create a database (with the shop schema unless told otherwise) and return its URL. */
export async function createDatabase(serverUrl: string, name: string, schema: string | null = SHOP_SCHEMA): Promise<string> {
  const admin = await connect(serverUrl);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  if (schema) {
    const db = await connect(url.toString());
    await db.query(schema);
    await db.end();
  }
  return url.toString();
}

/** The example config, isolated: its own deployment name, slot and publication. */
export function shopTestConfig(databaseUrl: string, redisUrl: string, name: string): Config {
  return {
    ...shopConfig,
    // The example's reactions call a webhook: a test declares the reactions it exercises.
    reactions: {},
    name,
    source: source.postgres({ url: databaseUrl, slot: name, publication: name }),
    // The suite's Redis runs without persistence on purpose; say so instead of being warned.
    redis: { url: redisUrl, durability: { mode: 'none' } },
  } as Config;
}

/**
 * Wait until the views include every transaction committed before this call: a transactional
 * logical message is written, and its LSN must be covered by the checkpoint stored with the views.
 */
export async function waitForSync(db: pg.Client, redis: RedisClient, deployment: string, slot: string, timeoutMs = 30_000): Promise<void> {
  const { rows } = await db.query<{ lsn: string }>(`SELECT pg_logical_emit_message(true, 'cdc-views-test', 'barrier')::text AS lsn`);
  const [hi, lo] = rows[0]!.lsn.split('/');
  const target = lsnToken((BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // Redis may be restarting under a fault test: keep asking until the deadline.
    const stored = await redis.sendCommand<string | null>(['HGET', checkpointKey(keyPrefix(deployment)), `pg:${slot}`]).catch(() => null);
    if (stored !== null && stored >= target) return;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for the views to reach ${rows[0]!.lsn} (stored ${stored})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Waits until at least `count` parts of a transaction too large for one step are in Redis (the
 * deployment's `parts` hash), and answers how many there were.
 */
export async function waitForAppliedParts(redis: RedisClient, prefix: string, count: number, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const parts = await redis.sendCommand<number>(['HLEN', partsKey(prefix)]);
    if (parts >= count || Date.now() > deadline) return parts;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * `work`, or a rejection naming the step and what `diagnose` finds once it has taken `ms`: a stall
 * fails with its cause instead of the test's own timeout.
 */
export async function within<T>(ms: number, step: string, work: Promise<T>, diagnose: () => Promise<string>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      diagnose().then(
        (found) => reject(new Error(`${step}: no answer after ${ms} ms\n${found}`)),
        (error: unknown) => reject(new Error(`${step}: no answer after ${ms} ms (diagnosis failed: ${String(error)})`)),
      );
    }, ms);
  });
  try {
    return await Promise.race([work, stalled]);
  } finally {
    clearTimeout(timer);
  }
}

export async function graphql<T = Record<string, unknown>>(url: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query, variables }),
    // A request the service never answers fails here, naming the query, instead of hanging the test.
    signal: AbortSignal.timeout(60_000),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (body.errors) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data!;
}

/** Every row of a view through the GraphQL list query, page by page. */
export async function readViewOverGraphql(url: string, view: CompiledView): Promise<Record<string, unknown>[]> {
  const fields = view.fields.map((f) => f.name).join(' ');
  const rows: Record<string, unknown>[] = [];
  let after: string | null = null;
  for (;;) {
    const data: Record<string, { nodes: Record<string, unknown>[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } }> =
      await graphql(url, `query($after: String) { ${view.name}List(first: 1000, after: $after) { nodes { ${fields} } pageInfo { hasNextPage endCursor } } }`, { after });
    const page = data[`${view.name}List`]!;
    rows.push(...page.nodes);
    if (!page.pageInfo.hasNextPage) return rows;
    after = page.pageInfo.endCursor;
  }
}

/** A view's rows computed by PostgreSQL from the view's SQL, decoded like the service decodes values. */
export async function readViewOverSql(db: pg.Client, view: CompiledView): Promise<Record<string, unknown>[]> {
  const result = await db.query<Record<string, string | null>>(view.sql);
  return result.rows.map((r) => {
    const row: Record<string, Value> = {};
    for (const f of view.fields) {
      const text = r[f.name];
      row[f.name] = text === null || text === undefined ? null : decodePgText(f.type, text);
    }
    return row;
  });
}

function sortByKey(view: CompiledView, rows: Record<string, unknown>[]): Record<string, unknown>[] {
  const keyOf = (r: Record<string, unknown>): string => JSON.stringify(view.keyFields.map((f) => r[f.name] ?? null));
  return [...rows].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
}

/** The oracle: every view equals its SQL on the source, exactly (every digit of every decimal). */
export async function expectViewsEqualSql(url: string, db: pg.Client, registry: Registry): Promise<void> {
  // Every view at once: on a loaded machine each round trip waits for a core, so fewer in a row.
  const read = await Promise.all(
    registry.views.map(async (view) => {
      const [actual, expected] = await Promise.all([readViewOverGraphql(url, view), readViewOverSql(db, view)]);
      return { view, actual, expected };
    }),
  );
  for (const { view, actual, expected } of read) {
    expect(sortByKey(view, actual), `view ${view.name}`).toEqual(sortByKey(view, expected));
  }
}

export interface ServiceFixture {
  readonly name: string;
  readonly service: import('../../api/service.ts').Service;
  readonly registry: Registry;
  /** The config the service runs (another process of the deployment can start with it). */
  readonly config: Config;
  readonly db: pg.Client;
  readonly redis: RedisClient;
  /** Wait until the views include everything committed so far. */
  sync(timeoutMs?: number): Promise<void>;
  /** What the service and the database are doing now: printed when a step stalls. */
  diagnose(): Promise<string>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  /** DDL of the database (default: the shop schema). */
  readonly schema?: string;
  readonly seed?: string;
  /** The config under test for this database (default: the shop views, isolated by `name`). */
  readonly config?: (databaseUrl: string, redisUrl: string, name: string) => Config;
}

/**
 * A fresh database (schema and seed), the service on it in this process, and a Redis connection;
 * `close()` stops the service and drops the replication slot.
 */
export async function startFixture(prefix: string, options: FixtureOptions = {}): Promise<ServiceFixture> {
  const { inject } = await import('vitest');
  const { startService } = await import('../../api/service.ts');
  const { connectRedis } = await import('../../views/store/redis.ts');
  const { createRegistry } = await import('../../views/registry.ts');
  const { quietLogger } = await import('./logger.ts');
  const name = uniqueName(prefix);
  const databaseUrl = await createDatabase(inject('databaseUrl'), name, options.schema ?? SHOP_SCHEMA);
  const db = await connect(databaseUrl);
  if (options.seed) await db.query(options.seed);
  const config = (options.config ?? shopTestConfig)(databaseUrl, inject('redisUrl'), name);
  const service = await startService({ config, port: 0, logger: quietLogger() });
  const redis = await connectRedis(inject('redisUrl'));
  const sync = (timeoutMs?: number): Promise<void> => waitForSync(db, redis, name, name, timeoutMs);
  await sync();
  return {
    name,
    service,
    registry: createRegistry(config),
    config,
    db,
    redis,
    sync,
    async diagnose() {
      const health = service.engine?.health();
      // Another connection: `db` may be the one stuck.
      const probe = await connect(databaseUrl);
      try {
        const { rows } = await probe.query(
          `SELECT pid, state, wait_event_type, wait_event, now() - query_start AS running, left(query, 200) AS query
             FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`,
        );
        const notLive = health && Object.fromEntries([...health.views].filter(([, v]) => v.state !== 'live'));
        return `ENGINE ${JSON.stringify(health && { ...health, views: notLive })}\nDATABASE ${JSON.stringify(rows)}`;
      } finally {
        await probe.end();
      }
    },
    async close() {
      await service.stop();
      await redis.quit();
      await db.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
      await db.end();
    },
  };
}

/** The shop database (seeded with `seed`) and the shop views on it. */
export function startShop(prefix: string, seed?: string): Promise<ServiceFixture> {
  return startFixture(prefix, seed === undefined ? {} : { seed });
}
