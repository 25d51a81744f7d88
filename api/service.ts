/**
 * The one module that wires ingest + views + schema + api into a running service.
 *
 *   config ─▶ registry ─▶ engine (source → Redis)      ─┐
 *                        changelog hub (Redis → pushes) ─┼─▶ HTTP / WebSocket API
 *                        metrics                         ─┘
 *
 * Redis connections: the engine's write steps run on a connection of their own (a long step never
 * delays a read, and WAITAOF/WAIT wait for exactly its writes); the lease and small reads use a
 * control connection; GraphQL reads share a reader; the changelog hub blocks on its own.
 */
import pino from 'pino';
import { createSource, type SnapshotProgress } from '../ingest/index.ts';
import { ServiceError } from '../core/errors.ts';
import type { SourceOptions } from '../ingest/source-options.ts';
import { AckGate, readPersistence, resolveDurability } from '../views/store/durability.ts';
import { keyPrefix } from '../views/store/keys.ts';
import { connectRedis, type RedisClient } from '../views/store/redis.ts';
import type { Config } from '../views/config.ts';
import { Engine } from '../views/engine.ts';
import { readPage, readRow } from '../views/store/read.ts';
import { createRegistry, tableRequirements, type Registry } from '../views/registry.ts';
import type { ViewDataSource } from '../schema/build-schema.ts';
import { ChangelogHub } from './changelog-hub.ts';
import { createMetrics } from './metrics.ts';
import { startApi, type ApiServer } from './server.ts';

export type Logger = pino.Logger;

export function createLogger(): Logger {
  return pino({
    name: 'cdc-views',
    level: process.env['LOG_LEVEL'] ?? 'info',
    // Never log credentials that may sit in connection URLs.
    redact: { paths: ['url', '*.url', 'databaseUrl', 'redisUrl', 'password', '*.password'], censor: '[redacted]' },
  });
}

export interface ServiceOptions {
  readonly config: Config;
  readonly port?: number;
  readonly host?: string;
  readonly logger?: Logger;
  /** Overrides of the config's connection settings (CLI flags, tests). */
  readonly databaseUrl?: string;
  readonly redisUrl?: string;
  readonly kafkaBrokers?: readonly string[];
  /** Called as the initial snapshot advances (besides the log line at most once a second). */
  readonly onSnapshotProgress?: (progress: SnapshotProgress) => void;
}

export interface Service {
  readonly registry: Registry;
  readonly engine: Engine;
  readonly api: ApiServer;
  readonly redis: RedisClient;
  readonly url: string;
  /** Settles when the engine stops; rejects on a fatal error (bad config or source schema). */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

export async function startService(options: ServiceOptions): Promise<Service> {
  const log = options.logger ?? createLogger();
  const registry = createRegistry(options.config);
  const redisUrl = options.redisUrl ?? options.config.redis?.url ?? process.env['REDIS_URL'];
  if (!redisUrl) throw new ServiceError('CONFIG_INVALID', 'No Redis to keep the views in: set REDIS_URL or redis.url in the config');
  const onRedisError = (error: Error): void => log.warn({ err: error }, 'redis connection error');
  const [writer, control, redis] = await Promise.all([connectRedis(redisUrl, onRedisError), connectRedis(redisUrl, onRedisError), connectRedis(redisUrl, onRedisError)]);
  const prefix = keyPrefix(registry.name);
  const durabilityOptions = options.config.redis?.durability ?? {};
  const durability = resolveDurability(await readPersistence(control), durabilityOptions);
  if (durability.warning) {
    if (durabilityOptions.require) {
      await Promise.all([writer, control, redis].map((c) => c.quit().catch(() => undefined)));
      throw new ServiceError('CONFIG_INVALID', `redis.durability.require is set, but ${durability.warning}`);
    }
    log.warn({ durability: durability.mode }, durability.warning);
  } else log.info({ durability: durability.mode }, `source positions are acknowledged when durable: ${durability.explanation}`);

  const sourceOptions: SourceOptions =
    options.config.source.kind === 'postgres' && options.databaseUrl
      ? { ...options.config.source, url: options.databaseUrl }
      : options.config.source.kind === 'kafka' && options.kafkaBrokers
        ? { ...options.config.source, brokers: options.kafkaBrokers }
        : options.config.source;
  let metricsRef: ReturnType<typeof createMetrics> | null = null;
  let lastProgressLog = 0;
  const engine = new Engine({
    registry,
    redis: writer,
    control,
    durability,
    ackGate: new AckGate(durability, durabilityOptions),
    ...(options.config.redis?.leaseTtlMs === undefined ? {} : { leaseTtlMs: options.config.redis.leaseTtlMs }),
    ...(options.config.redis?.changelogMaxLength === undefined ? {} : { changelogMaxLength: options.config.redis.changelogMaxLength }),
    createSource: () =>
      createSource(sourceOptions, tableRequirements(registry), {
        log: (level, message, fields) => log[level](fields ?? {}, message),
        onSnapshotProgress: (p) => {
          metricsRef?.snapshotProgress(p);
          options.onSnapshotProgress?.(p);
          if (p.done || Date.now() - lastProgressLog > 1000) {
            lastProgressLog = Date.now();
            const percent = p.estimatedRows > 0 ? Math.min(100, Math.round((100 * p.rows) / p.estimatedRows)) : null;
            log.info({ table: p.table, rows: p.rows, estimatedRows: p.estimatedRows, percent, done: p.done }, 'snapshot progress');
          }
        },
      }, registry.name),
    log: (level, message, fields) => log[level](fields ?? {}, message),
  });
  const hub = new ChangelogHub({ registry, prefix, redis, onError: (error) => log.warn({ err: error }, 'changelog tail error') });
  await hub.start();
  const metrics = (metricsRef = createMetrics({ views: registry, redis, prefix, engine, hub }));

  const views: ViewDataSource = {
    row: (view, key) => readRow(redis, prefix, view, key),
    page: (view, after, limit) => readPage(redis, prefix, view, after, limit),
    changes: (view, opts) => hub.changes(view, opts),
  };
  const development = options.config.api?.graphiql ?? process.env['NODE_ENV'] !== 'production';
  const api = await startApi({
    registry,
    views,
    metrics,
    health: () => readiness(engine, options.config.api?.readyMaxLagMs ?? 30_000),
    port: options.port ?? options.config.api?.port ?? Number(process.env['PORT'] ?? 4000),
    host: options.host ?? options.config.api?.host ?? process.env['HOST'] ?? '127.0.0.1',
    development,
    logError: (error) => log.error({ err: error }, 'api error'),
  });
  log.info({ url: api.url, views: registry.views.map((v) => v.name) }, 'cdc-views is serving GraphQL');

  const done = engine.start();
  let stopped = false;
  return {
    registry,
    engine,
    api,
    redis,
    url: api.url,
    done,
    async stop() {
      if (stopped) return;
      stopped = true;
      await api.close();
      await engine.stop();
      await hub.stop();
      await Promise.all([writer, control, redis].map((c) => c.quit().catch(() => undefined)));
    },
  };
}

/**
 * /ready: 200 only when the pipeline is live, not lagging beyond `maxLagMs`, and every view is
 * live; otherwise 503 with what is wrong (a load balancer then sends readers elsewhere).
 */
export function readiness(engine: Engine, maxLagMs: number): { ready: boolean; body: Record<string, unknown> } {
  const health = engine.health();
  const views = Object.fromEntries([...health.views].map(([name, s]) => [name, s.reason ? { state: s.state, reason: s.reason } : { state: s.state }]));
  const problems: string[] = [];
  if (health.state !== 'live') problems.push(health.reason ?? `the pipeline is ${health.state}`);
  if (health.lagMs > maxLagMs) problems.push(`the oldest change not yet applied arrived ${Math.round(health.lagMs)} ms ago (limit ${maxLagMs} ms)`);
  for (const [name, s] of health.views) if (s.state !== 'live') problems.push(`view ${name} is ${s.state}${s.reason ? `: ${s.reason}` : ''}`);
  const ready = problems.length === 0;
  return {
    ready,
    body: { status: ready ? 'ready' : 'not ready', pipeline: health.state, lagMs: Math.round(health.lagMs), durability: health.durability?.mode, problems, views },
  };
}
