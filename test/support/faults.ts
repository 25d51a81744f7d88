/**
 * The rig of the fault-injection suite (test/integration/faults-*.test.ts): the shop views on real
 * servers under a steady random workload, a subscriber keeping its own copy of a view, and after
 * each fault the oracle — every view read over GraphQL, and the subscriber's copy, equal to SQL.
 * Each test records what the fault did (detected or survived, time to recover, what subscribers
 * saw) in the run's scratch folder; the table is printed at the end of each file and kept in
 * docs/guarantees.md.
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { createClient, type Client } from 'graphql-ws';
import pg from 'pg';
import pino from 'pino';
import { expect, inject } from 'vitest';
import WebSocket from 'ws';
import { startService, type Service } from '../../api/service.ts';
import { source } from '../../ingest/source-options.ts';
import { startPostgres, startRedis, type RedisOptions, type RedisServer, type ThrowawayServer } from '../../scripts/servers.ts';
import type { Config } from '../../views/config.ts';
import { ENGINE_EVENTS } from '../../views/engine.ts';
import { createRegistry, type CompiledView, type Registry } from '../../views/registry.ts';
import type { DurabilityOptions } from '../../views/store/durability.ts';
import { connectRedis, type RedisClient } from '../../views/store/redis.ts';
import shopConfig from '../../examples/shop/views.config.ts';
import { scratchDir } from './child-service.ts';
import { connect, createDatabase, expectViewsEqualSql, readViewOverSql, uniqueName, waitForSync } from './shop.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';
import { statement, transactionSql, type Transaction } from './workload.ts';

export interface RigOptions {
  /** Redis persistence for this rig's own Redis server. */
  readonly redis?: RedisOptions;
  readonly durability?: DurabilityOptions;
  /** A PostgreSQL server of its own (for faults of PostgreSQL itself). */
  readonly ownPostgres?: boolean;
  /** Route the service's Redis connections through a TCP proxy the test can cut. */
  readonly proxy?: boolean;
  /** The config under test (default: the shop views). */
  readonly config?: (databaseUrl: string, redisUrl: string, name: string) => Config;
  readonly seed?: string;
}

/** What one fault did, for the table in docs/guarantees.md. */
export interface FaultRecord {
  readonly fault: string;
  /** survived (nothing to do) · detected → rebuilt · detected → resumed · detected → stopped … */
  readonly outcome: string;
  readonly recoveryMs: number | null;
  readonly lostChanges: number;
  readonly subscribers: string;
  readonly notes?: string;
}

/** A log that keeps every line (to assert what the service said). */
export function capturingLogger(): { logger: pino.Logger; lines: () => string[] } {
  const lines: string[] = [];
  const logger = pino({ name: 'cdc-views-fault', level: 'info' }, { write: (line: string) => void lines.push(line) });
  return { logger, lines: () => lines };
}

const TRUNCATE_RESET = 'RESET after a TRUNCATE of the workload';

/** Keeps a copy of one view from its subscription, the way a client would: RESET clears it. */
export class SubscriberCopy {
  readonly rows = new Map<string, Record<string, unknown>>();
  /** Per op; a RESET the workload's own TRUNCATEs cause is counted apart from one a fault causes. */
  readonly counts: Record<string, number> = { SNAPSHOT: 0, INSERT: 0, UPDATE: 0, DELETE: 0, RESET: 0, [TRUNCATE_RESET]: 0 };
  readonly resets: string[] = [];
  error: unknown = null;
  private client: Client;
  private stop: () => void;

  readonly view: CompiledView;

  constructor(url: string, view: CompiledView) {
    this.view = view;
    const fields = view.fields.map((f) => f.name).join(' ');
    const keyFields = view.keyFields.map((f) => f.name);
    this.client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    this.stop = this.client.subscribe(
      { query: `subscription { ${view.name}Changes(snapshot: true) { op reason row { ${fields} } previous { ${fields} } } }` },
      {
        next: ({ data, errors }) => {
          if (errors) {
            this.error = errors;
            return;
          }
          const event = Object.values(data as Record<string, { op: string; reason: string | null; row: Record<string, unknown> | null; previous: Record<string, unknown> | null }>)[0]!;
          const counted = event.op === 'RESET' && event.reason?.includes('truncated') ? TRUNCATE_RESET : event.op;
          this.counts[counted] = (this.counts[counted] ?? 0) + 1;
          const keyOf = (r: Record<string, unknown>): string => JSON.stringify(keyFields.map((k) => r[k] ?? null));
          if (event.op === 'RESET') {
            this.resets.push(event.reason ?? '');
            this.rows.clear();
          } else if (event.op === 'DELETE') this.rows.delete(keyOf(event.previous!));
          else this.rows.set(keyOf(event.row!), event.row!);
        },
        error: (error) => {
          this.error = error;
        },
        complete: () => undefined,
      },
    );
  }

  /** What this subscriber saw since `since` (a copy of counts). */
  summary(since: Record<string, number> = {}): string {
    const parts = Object.entries(this.counts)
      .map(([op, n]) => [op, n - (since[op] ?? 0)] as const)
      .filter(([, n]) => n > 0)
      .map(([op, n]) => `${n} ${op}`);
    return parts.length ? parts.join(', ') : 'nothing';
  }

  async close(): Promise<void> {
    this.stop();
    await this.client.dispose();
  }
}

export interface Rig {
  readonly name: string;
  readonly databaseUrl: string;
  readonly registry: Registry;
  readonly pgServer: ThrowawayServer | null;
  readonly redisServer: RedisServer;
  readonly proxy: TcpProxy | null;
  /** Redis as the service reaches it (through the proxy when there is one). */
  readonly serviceRedisUrl: string;
  service: Service;
  readonly log: () => string[];
  readonly monitor: { redis: RedisClient; db: pg.Client };
  /** Start another instance of the service on the same deployment (second writer, rolling deploy). */
  startInstance(config?: Config): Promise<Service>;
  config(): Config;
  workload: { start(): void; stop(): Promise<number>; committed(): number };
  subscribe(viewName: string): SubscriberCopy;
  /** Everything committed so far is in the views. */
  sync(timeoutMs?: number): Promise<void>;
  /** Until /ready answers 200 (ms waited). */
  untilReady(service?: Service, timeoutMs?: number): Promise<number>;
  /** Every view over GraphQL and every subscriber's copy equal SQL. */
  expectConsistent(subscribers?: readonly SubscriberCopy[]): Promise<void>;
  close(): Promise<void>;
}

export async function startRig(prefix: string, options: RigOptions = {}): Promise<Rig> {
  const name = uniqueName(prefix);
  const pgServer = options.ownPostgres ? await startPostgres() : null;
  const databaseUrl = await createDatabase(pgServer?.url ?? inject('databaseUrl'), name);
  const redisServer = await startRedis(options.redis ?? {});
  const proxy = options.proxy ? await startTcpProxy(redisServer.port) : null;
  const serviceRedisUrl = proxy ? proxy.url('redis') : redisServer.url;
  const monitorDb = await connectResilient(databaseUrl);
  if (options.seed) await monitorDb.query(options.seed);
  const monitorRedis = await connectRedis(redisServer.url);
  const makeConfig = (): Config => {
    const base = (options.config ?? defaultConfig)(databaseUrl, serviceRedisUrl, name);
    return { ...base, redis: { ...base.redis, url: serviceRedisUrl, leaseTtlMs: 2000, ...(options.durability ? { durability: options.durability } : {}) } };
  };
  const registry = createRegistry(makeConfig());
  const captured = capturingLogger();
  const instances: Service[] = [];
  const startInstance = async (config = makeConfig()): Promise<Service> => {
    const s = await startService({ config, port: 0, logger: captured.logger });
    instances.push(s);
    return s;
  };
  const service = await startInstance();
  const subscribers: SubscriberCopy[] = [];

  // A steady workload: random shop transactions, on its own connection that survives PostgreSQL restarts.
  let running = false;
  let committed = 0;
  let loop: Promise<void> | null = null;
  const transactions = fc.sample(fc.array(statement, { minLength: 1, maxLength: 4 }), { numRuns: 5000, seed: 42 });
  const workload = {
    start() {
      running = true;
      loop = (async () => {
        const db = await connectResilient(databaseUrl);
        for (let i = 0; running; i++) {
          const t: Transaction = { statements: transactions[i % transactions.length]!, rollback: i % 17 === 0 };
          try {
            await db.query(transactionSql(t));
            if (!t.rollback) committed++;
          } catch {
            await db.reconnect();
          }
          await new Promise((r) => setTimeout(r, 2));
        }
        await db.end();
      })();
    },
    async stop() {
      running = false;
      await loop;
      return committed;
    },
    committed: () => committed,
  };

  const rig: Rig = {
    name,
    databaseUrl,
    registry,
    pgServer,
    redisServer,
    proxy,
    serviceRedisUrl,
    service,
    log: captured.lines,
    monitor: { redis: monitorRedis, db: monitorDb },
    startInstance,
    config: makeConfig,
    workload,
    subscribe(viewName) {
      const view = registry.byName.get(viewName)!;
      const copy = new SubscriberCopy(rig.service.url, view);
      subscribers.push(copy);
      return copy;
    },
    async sync(timeoutMs = 60_000) {
      await waitForSync(monitorDb, monitorRedis, name, name, timeoutMs);
    },
    async untilReady(s = rig.service, timeoutMs = 90_000) {
      const started = Date.now();
      for (;;) {
        // Ready, and no view still backfilled beside the live ones.
        const ok = await fetch(s.url.replace('/graphql', '/ready')).then(
          async (r) => r.status === 200 && !('backfilling' in ((await r.json()) as object)),
          () => false,
        );
        if (ok) return Date.now() - started;
        if (Date.now() - started > timeoutMs) throw new Error(`not ready after ${timeoutMs} ms: ${await fetch(s.url.replace('/graphql', '/ready')).then((r) => r.text(), String)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async expectConsistent(copies = subscribers) {
      await expectViewsEqualSql(rig.service.url, monitorDb, registry);
      for (const copy of copies) {
        expect(copy.error, 'subscription error').toBeNull();
        await expectCopyEqualsSql(copy, monitorDb);
      }
    },
    async close() {
      await workload.stop();
      for (const copy of subscribers) await copy.close().catch(() => undefined);
      for (const s of instances) await s.stop().catch(() => undefined);
      await monitorRedis.quit().catch(() => undefined);
      await monitorDb.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, [name]).catch(() => undefined);
      await monitorDb.end().catch(() => undefined);
      await proxy?.close();
      await redisServer.stop();
      await pgServer?.stop();
    },
  };
  return rig;
}

function defaultConfig(databaseUrl: string, redisUrl: string, name: string): Config {
  return { ...shopConfig, reactions: {}, name, source: source.postgres({ url: databaseUrl, slot: name, publication: name }), redis: { url: redisUrl } } as Config;
}

/** The subscriber's copy (keyed rows) equals the view's SQL: it missed nothing and kept nothing deleted. */
async function expectCopyEqualsSql(copy: SubscriberCopy, db: pg.Client): Promise<void> {
  const { view } = copy;
  const keyOf = (r: Record<string, unknown>): string => JSON.stringify(view.keyFields.map((k) => r[k.name] ?? null));
  const expected = new Map((await readViewOverSql(db, view)).map((r) => [keyOf(r), r]));
  // Subscriptions deliver asynchronously: give the last pushes a moment.
  const deadline = Date.now() + 10_000;
  const sorted = (m: Map<string, unknown>): [string, unknown][] => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  while (JSON.stringify(sorted(copy.rows)) !== JSON.stringify(sorted(expected)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(sorted(copy.rows), `the subscriber's copy of ${view.name}`).toEqual(sorted(expected));
}

/** A PostgreSQL client that reconnects when the server restarts under it (a query is retried once reconnected). */
async function connectResilient(url: string): Promise<pg.Client & { reconnect(): Promise<void> }> {
  let client = await connect(url);
  client.on('error', () => undefined);
  const reconnect = async (): Promise<void> => {
    await client.end().catch(() => undefined);
    for (let attempt = 0; ; attempt++) {
      try {
        client = await connect(url);
        client.on('error', () => undefined);
        return;
      } catch (error) {
        if (attempt > 300) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const connectionLost = (error: unknown): boolean =>
    /not queryable|Connection terminated|terminating connection|ECONNREFUSED|ECONNRESET|the database system is/.test(String(error));
  const proxy = new Proxy({} as pg.Client & { reconnect(): Promise<void> }, {
    get(_, prop) {
      if (prop === 'reconnect') return reconnect;
      if (prop === 'query') {
        return async (...args: unknown[]) => {
          for (let attempt = 0; ; attempt++) {
            try {
              return await (client.query as (...a: unknown[]) => Promise<unknown>).apply(client, args);
            } catch (error) {
              if (!connectionLost(error) || attempt >= 3) throw error;
              await reconnect();
            }
          }
        };
      }
      const value = (client as unknown as Record<string | symbol, unknown>)[prop];
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(client) : value;
    },
  });
  return proxy;
}

/** Engine events of a service, counted (rebuilds, state losses, restarts, stopped views). */
export function watchEngine(service: Service): { rebuilds: string[]; lost: string[]; restarts: number; stopped: string[] } {
  const seen = { rebuilds: [] as string[], lost: [] as string[], restarts: 0, stopped: [] as string[] };
  service.engine.on(ENGINE_EVENTS.REBUILD, (e: { reason: string }) => seen.rebuilds.push(e.reason));
  service.engine.on(ENGINE_EVENTS.STATE_LOST, (e: { reason: string }) => seen.lost.push(e.reason));
  service.engine.on(ENGINE_EVENTS.RESTART, () => seen.restarts++);
  service.engine.on(ENGINE_EVENTS.VIEW_STOPPED, (e: { view: string }) => seen.stopped.push(e.view));
  return seen;
}

/** Where this run's records go (CDC_VIEWS_FAULTS_OUT keeps them past the run, for docs/guarantees.md). */
const RECORDS = (): string => process.env['CDC_VIEWS_FAULTS_OUT'] ?? join(scratchDir(), 'faults.jsonl');

export function record(entry: FaultRecord): void {
  appendFileSync(RECORDS(), `${JSON.stringify(entry)}\n`);
  console.log(`[fault] ${entry.fault}: ${entry.outcome}; recovered in ${entry.recoveryMs ?? '–'} ms; changes lost ${entry.lostChanges}; subscribers: ${entry.subscribers}`);
}

/** The recorded faults of this run as a Markdown table (docs/guarantees.md). */
export function faultTable(): string {
  let lines: FaultRecord[] = [];
  try {
    lines = readFileSync(RECORDS(), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as FaultRecord);
  } catch {
    return '';
  }
  const rows = lines.map((r) => `| ${r.fault} | ${r.outcome} | ${r.recoveryMs === null ? '–' : `${(r.recoveryMs / 1000).toFixed(2)} s`} | ${r.lostChanges} | ${r.subscribers} |${r.notes ? ` ${r.notes} |` : ''}`);
  return ['| fault | outcome | time to recover | changes lost | what subscribers saw |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}
