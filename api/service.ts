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
import { Engine, ENGINE_EVENTS, type BatchAppliedEvent } from '../views/engine.ts';
import { checkpointTokens, currentVersion, readRowAt } from '../views/store/read.ts';
import { countList, listVersion, readList } from '../views/store/list.ts';
import { ReadCache } from './read-cache.ts';
import { lsnToken } from '../ingest/pg/postgres-source.ts';
import { PublicError } from '../schema/errors.ts';
import { compareVersions } from './changelog-hub.ts';
import { createRegistry, tableRequirements, type CompiledView, type Registry } from '../views/registry.ts';
import { buildSchema, type ReadTarget, type ViewDataSource } from '../schema/build-schema.ts';
import { Permissions } from '../schema/permissions.ts';
import { AuthGate, Authenticator } from './auth.ts';
import { reactedViews, ReactionGroups, startReactions } from '../reactions/index.ts';
import { ChangelogHub } from './changelog-hub.ts';
import { createMetrics } from './metrics.ts';
import { startApi, type ApiServer } from './server.ts';
import { StatusHistory, statusPage } from './status-page.ts';

export type Logger = pino.Logger;

export function createLogger(): Logger {
  return pino({
    name: 'cdc-views',
    level: process.env['LOG_LEVEL'] ?? 'info',
    // Never log credentials that may sit in connection URLs.
    redact: {
      paths: ['url', '*.url', 'databaseUrl', 'redisUrl', 'password', '*.password'],
      censor: '[redacted]',
    },
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
  /** What this process does (default: everything). */
  readonly role?: ServiceRole;
}

/**
 * What one process does: everything (the default), only serve the views from Redis (`api`: any
 * number of these beside one ingest process), only keep the views (`ingest`: /health, /ready and
 * /metrics, no GraphQL), or only run the reactions (`reactions`: any number, sharing the work).
 */
export type ServiceRole = 'all' | 'api' | 'ingest' | 'reactions';

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

/** An API-only instance: no engine; it settles `done` when stopped. */
export type ApiOnlyService = Omit<Service, 'engine'> & { readonly engine: null };

export function startService(options: ServiceOptions & { readonly role: 'api' }): Promise<ApiOnlyService>;
export function startService(
  options: ServiceOptions & { readonly role?: 'all' | 'ingest' },
): Promise<Service>;
export function startService(
  options: ServiceOptions & { readonly role: 'reactions' },
): Promise<ApiOnlyService>;
export function startService(options: ServiceOptions): Promise<Service | ApiOnlyService>;
export async function startService(options: ServiceOptions): Promise<Service | ApiOnlyService> {
  const log = options.logger ?? createLogger();
  const role = options.role ?? 'all';
  const registry = createRegistry(options.config);
  const redisUrl = options.redisUrl ?? options.config.redis?.url ?? process.env['REDIS_URL'];
  if (!redisUrl)
    throw new ServiceError(
      'CONFIG_INVALID',
      'No Redis to keep the views in: set REDIS_URL or redis.url in the config',
    );
  const onRedisError = (error: Error): void => log.warn({ err: error }, 'redis connection error');
  const redis = await connectRedis(redisUrl, onRedisError);
  const connections = [redis];
  const prefix = keyPrefix(registry.name);
  let metricsRef: ReturnType<typeof createMetrics> | null = null;
  const engine =
    role === 'api' || role === 'reactions'
      ? null
      : await createEngine(options, registry, prefix, redisUrl, log, connections, (p) =>
          metricsRef?.snapshotProgress(p),
        );
  const hub =
    role === 'ingest' || role === 'reactions'
      ? null
      : new ChangelogHub({
          registry,
          prefix,
          redis,
          onError: (error) => log.warn({ err: error }, 'changelog tail error'),
        });
  await hub?.start();
  const metrics = (metricsRef = createMetrics({ views: registry, redis, prefix, engine, hub }));
  const reactions =
    role === 'all' || role === 'reactions'
      ? await startReactions({
          config: options.config,
          registry,
          prefix,
          redisUrl,
          log: (level, message, fields) => log[level](fields ?? {}, message),
          onOutcome: (reaction, outcome) => metrics.reactionOutcome(reaction, outcome),
        })
      : null;
  // The process writing the views keeps the reaction groups and trims what they read.
  const reactionGroups = engine
    ? new ReactionGroups({
        config: options.config,
        prefix,
        redis,
        changelogMaxLength: options.config.redis?.changelogMaxLength ?? 10_000,
        log: (level, message, fields) => log[level](fields ?? {}, message),
        onBacklog: (backlogs) => metrics.reactionBacklogs(backlogs),
      })
    : null;
  reactionGroups?.start();

  const cache = new ReadCache({
    list: (view, request) => readList(redis, prefix, view, request),
    version: (view) => listVersion(redis, prefix, view),
    count: (view, keep) => countList(redis, prefix, view, keep),
  });
  const views: ViewDataSource | null = hub && {
    row: (view, key) => readRowAt(redis, prefix, view, key),
    reach: (view, target) => reach(redis, prefix, view, target, options.config.source.kind === 'postgres'),
    list: (view, request) => cache.list(view, request),
    count: (view, keep, as) => cache.count(view, keep, as),
    changes: (view, opts) => hub.changes(view, opts),
  };
  const development = options.config.api?.graphiql ?? process.env['NODE_ENV'] !== 'production';
  const apiConfig = options.config.api;
  const sortInMemoryRows = apiConfig?.limits?.sortInMemoryRows;
  const permissions = new Permissions(registry, apiConfig, (shape) =>
    buildSchema(registry, shape, sortInMemoryRows === undefined ? {} : { sortInMemoryRows }),
  );
  const gate = new AuthGate(
    new Authenticator({ auth: apiConfig?.auth, roleReadsAnything: (r) => permissions.readsAnything(r) }),
    permissions,
    development,
  );
  const host = options.host ?? apiConfig?.host ?? process.env['HOST'] ?? '127.0.0.1';
  if (views && !apiConfig?.auth && !isLoopback(host)) {
    log.warn(
      { host },
      'the API listens beyond this machine without api.auth: anyone who reaches the port reads every view. Configure api.auth (a JWT secret or JWKS URL) and api.permissions',
    );
  }
  const maxLagMs = apiConfig?.readyMaxLagMs ?? 30_000;
  const history = engine && (apiConfig?.statusPage ?? development) ? new StatusHistory() : null;
  engine?.on(ENGINE_EVENTS.BATCH_APPLIED, (e: BatchAppliedEvent) => {
    if (!e.duplicate) history?.record(e.changes, e.commitTimeUs);
  });
  const api = await startApi({
    registry,
    views,
    gate,
    metrics,
    health: () =>
      engine
        ? readiness(engine, maxLagMs)
        : hub
          ? apiReadiness(hub)
          : { ready: true, body: { status: 'ready', role, reactions: reactions?.names ?? [] } },
    port: options.port ?? apiConfig?.port ?? Number(process.env['PORT'] ?? 4000),
    host,
    development,
    logError: (error) => log.error({ err: error }, 'api error'),
    limits: apiConfig?.limits,
    cors: apiConfig?.cors,
    metricsEndpoint: apiConfig?.metrics,
    statusPage:
      (apiConfig?.statusPage ?? development)
        ? statusPage({ config: options.config, registry, redis, prefix, role, history })
        : null,
  });
  if (views)
    log.info(
      { url: api.url, views: registry.views.map((v) => v.name), role },
      'cdc-views is serving GraphQL',
    );
  else
    log.info(
      { url: api.url.replace(/\/graphql$/, '/ready'), role },
      'cdc-views keeps the views (ingest only: no GraphQL here)',
    );

  let stopped = false;
  let settle: () => void = () => undefined;
  const done = engine ? engine.start() : new Promise<void>((r) => (settle = r));
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
      await reactions?.stop();
      await reactionGroups?.stop();
      history?.stop();
      await engine?.stop();
      await hub?.stop();
      await Promise.all(connections.map((c) => c.quit().catch(() => undefined)));
      settle();
    },
  };
}

/**
 * The ingest side: the writer's connections, the persistence mode it acknowledges by, and the
 * engine that keeps the views from the source.
 */
async function createEngine(
  options: ServiceOptions,
  registry: Registry,
  prefix: string,
  redisUrl: string,
  log: Logger,
  connections: RedisClient[],
  onProgress: (p: SnapshotProgress) => void,
): Promise<Engine> {
  const onRedisError = (error: Error): void => log.warn({ err: error }, 'redis connection error');
  const [writer, control] = await Promise.all([
    connectRedis(redisUrl, onRedisError),
    connectRedis(redisUrl, onRedisError),
  ]);
  connections.push(writer, control);
  const durabilityOptions = options.config.redis?.durability ?? {};
  const durability = resolveDurability(await readPersistence(control), durabilityOptions);
  if (durability.warning) {
    if (durabilityOptions.require) {
      await Promise.all(connections.map((c) => c.quit().catch(() => undefined)));
      throw new ServiceError('CONFIG_INVALID', `redis.durability.require is set, but ${durability.warning}`);
    }
    log.warn({ durability: durability.mode }, durability.warning);
  } else
    log.info(
      { durability: durability.mode },
      `source positions are acknowledged when durable: ${durability.explanation}`,
    );

  const sourceOptions: SourceOptions =
    options.config.source.kind === 'postgres' && options.databaseUrl
      ? { ...options.config.source, url: options.databaseUrl }
      : options.config.source.kind === 'kafka' && options.kafkaBrokers
        ? { ...options.config.source, brokers: options.kafkaBrokers }
        : options.config.source;
  let lastProgressLog = 0;
  return new Engine({
    registry,
    redis: writer,
    control,
    durability,
    ackGate: new AckGate(durability, durabilityOptions),
    ...(options.config.redis?.leaseTtlMs === undefined
      ? {}
      : { leaseTtlMs: options.config.redis.leaseTtlMs }),
    ...(options.config.redis?.changelogMaxLength === undefined
      ? {}
      : { changelogMaxLength: options.config.redis.changelogMaxLength }),
    ...(options.config.redis?.fanoutChunk === undefined
      ? {}
      : { fanoutChunk: options.config.redis.fanoutChunk }),
    reactedViews: reactedViews(options.config),
    createSource: () =>
      createSource(
        sourceOptions,
        tableRequirements(registry),
        {
          log: (level, message, fields) => log[level](fields ?? {}, message),
          onSnapshotProgress: (p) => {
            onProgress(p);
            options.onSnapshotProgress?.(p);
            if (p.done || Date.now() - lastProgressLog > 1000) {
              lastProgressLog = Date.now();
              const percent =
                p.estimatedRows > 0 ? Math.min(100, Math.round((100 * p.rows) / p.estimatedRows)) : null;
              log.info(
                { table: p.table, rows: p.rows, estimatedRows: p.estimatedRows, percent, done: p.done },
                'snapshot progress',
              );
            }
          },
        },
        registry.name,
      ),
    log: (level, message, fields) => log[level](fields ?? {}, message),
  });
}

/** How long a read with `atLeast` waits for the views to get there. */
const READ_YOUR_WRITES_MS = 5_000;

/** Polls until the view's newest version, or the views' checkpoint, reaches the target (bounded); whether it did. */
async function reach(
  redis: RedisClient,
  prefix: string,
  view: CompiledView,
  target: ReadTarget,
  postgres: boolean,
): Promise<boolean> {
  if ('lsn' in target && !postgres) {
    throw new PublicError(
      'atLeast takes a PostgreSQL LSN only when the views read PostgreSQL directly; give a version of the view (from a page or a change)',
      'BAD_USER_INPUT',
    );
  }
  const token = 'lsn' in target ? lsnToken(target.lsn) : null;
  const deadline = Date.now() + READ_YOUR_WRITES_MS;
  for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
    const reached =
      'version' in target
        ? compareVersions(await currentVersion(redis, prefix, view), target.version) >= 0
        : [...(await checkpointTokens(redis, prefix)).values()].some((t) => t >= token!);
    if (reached || Date.now() >= deadline) return reached;
    await new Promise((r) => setTimeout(r, wait));
  }
}

/** /ready of an API-only instance: every view live in Redis, and Redis answering. */
function apiReadiness(hub: ChangelogHub): { ready: boolean; body: Record<string, unknown> } {
  const { ready, problems, views } = hub.health();
  return {
    ready,
    body: { status: ready ? 'ready' : 'not ready', role: 'api', problems, views: Object.fromEntries(views) },
  };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * /ready: 200 only when the pipeline is live, not lagging beyond `maxLagMs`, and every view is
 * live or being backfilled beside the live ones; otherwise 503 with what is wrong (a load
 * balancer then sends readers elsewhere).
 */
export function readiness(
  engine: Engine,
  maxLagMs: number,
): { ready: boolean; body: Record<string, unknown> } {
  const health = engine.health();
  const views = Object.fromEntries(
    [...health.views].map(([name, s]) => [
      name,
      s.reason ? { state: s.state, reason: s.reason } : { state: s.state },
    ]),
  );
  const problems: string[] = [];
  if (health.state !== 'live') problems.push(health.reason ?? `the pipeline is ${health.state}`);
  if (health.lagMs > maxLagMs)
    problems.push(
      `the oldest change not yet applied arrived ${Math.round(health.lagMs)} ms ago (limit ${maxLagMs} ms)`,
    );
  // A view being backfilled answers with a clear error until it is live; the others serve meanwhile.
  for (const [name, s] of health.views)
    if (s.state !== 'live' && !s.backfill)
      problems.push(`view ${name} is ${s.state}${s.reason ? `: ${s.reason}` : ''}`);
  const backfilling = Object.fromEntries(
    [...health.views]
      .filter(([, s]) => s.state === 'building' && s.backfill)
      .map(([name, s]) => [name, s.backfill!.tables]),
  );
  const ready = problems.length === 0;
  return {
    ready,
    body: {
      status: ready ? 'ready' : 'not ready',
      pipeline: health.state,
      lagMs: Math.round(health.lagMs),
      durability: health.durability?.mode,
      problems,
      views,
      ...(Object.keys(backfilling).length > 0 ? { backfilling } : {}),
    },
  };
}
