/**
 * The one module that wires ingest + views + schema + api into a running service.
 *
 *   config ─▶ registry ─▶ engine (source → Redis)      ─┐
 *                        changelog hub (Redis → pushes) ─┼─▶ HTTP / WebSocket API
 *                        metrics                         ─┘
 */
import pino from 'pino';
import { createSource, type SnapshotProgress } from '../ingest/index.ts';
import { ServiceError } from '../ingest/errors.ts';
import type { SourceOptions } from '../ingest/source-options.ts';
import { keyPrefix } from '../views/store/keys.ts';
import { connectRedis, type RedisClient } from '../views/store/redis.ts';
import type { Config } from '../views/define.ts';
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
  const redis = await connectRedis(redisUrl, (error) => log.warn({ err: error }, 'redis connection error'));
  const prefix = keyPrefix(registry.name);

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
    redis,
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
    isReady: () => engine.ready,
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
      await redis.quit().catch(() => undefined);
    },
  };
}
