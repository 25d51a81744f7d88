/**
 * The service's configuration, all of it in one place: what `views.config.ts` exports with
 * `defineConfig` — the source, Redis (where the views live, and how durably), the API, and the
 * views themselves.
 */
import type { SourceOptions } from '../ingest/source-options.ts';
import type { ViewDef } from './define.ts';
import type { DurabilityOptions } from './store/durability.ts';

export type { SourceOptions } from '../ingest/source-options.ts';
export type { DurabilityOptions } from './store/durability.ts';

export interface RedisOptions {
  /** redis://[user:password@]host:port[/db]; defaults to $REDIS_URL. */
  readonly url?: string | undefined;
  /**
   * When a write step may be acknowledged to the source (docs/guarantees.md): by default the
   * strongest mode Redis's persistence settings allow, with a loud warning when none is durable;
   * `require: true` refuses to start then.
   */
  readonly durability?: DurabilityOptions;
  /**
   * How long the writer's lease lasts without renewal (ms; default 5000). One instance writes a
   * deployment at a time; after a crash another takes over within this time.
   */
  readonly leaseTtlMs?: number;
  /**
   * Entries kept per view changelog (approximately; default 10 000): how far back subscriptions
   * can resume with `since`. A subscriber further behind gets a RESET and a fresh snapshot.
   */
  readonly changelogMaxLength?: number;
}

export interface ApiOptions {
  readonly port?: number;
  readonly host?: string;
  /** GraphiQL in the browser at /graphql; on unless NODE_ENV=production. */
  readonly graphiql?: boolean;
  /** /ready answers 503 when the oldest change received and not yet applied is older than this (ms; default 30 000). */
  readonly readyMaxLagMs?: number;
}

export interface Config<V extends Record<string, ViewDef> = Record<string, ViewDef>> {
  /** Names this deployment's keys in Redis (`cdcv:{<name>}:…`); several deployments can share a Redis. */
  readonly name?: string;
  readonly source: SourceOptions;
  readonly redis?: RedisOptions;
  readonly api?: ApiOptions;
  readonly views: V;
}

/** Declare the service: a source, Redis, and the views. Returns the config unchanged, typed. */
export function defineConfig<const V extends Record<string, ViewDef>>(config: Config<V>): Config<V> {
  return config;
}
