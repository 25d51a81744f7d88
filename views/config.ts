/**
 * The service's configuration, all of it in one place: what `views.config.ts` exports with
 * `defineConfig` — the source, Redis (where the views live, and how durably), the API, and the
 * views themselves.
 */
import type { SourceOptions } from '../ingest/source-options.ts';
import type { InferRow, ViewDef } from './define.ts';
import type { ReactionDef } from './reactions.ts';
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
  /**
   * Rows of the other side a join key may have before a change meeting it is joined after its
   * step, this many rows per step (default 2000; docs/architecture.md, "Join fan-out"): bounds the
   * memory and the write step of a change that matches a million rows.
   */
  readonly fanoutChunk?: number;
}

export interface ApiOptions<V extends Record<string, ViewDef> = Record<string, ViewDef>> {
  readonly port?: number;
  readonly host?: string;
  /** GraphiQL in the browser at /graphql; on unless NODE_ENV=production. */
  readonly graphiql?: boolean;
  /**
   * The live status page at /status (views, positions, lag, dead letters, a live table of a view's
   * rows, charts); on unless NODE_ENV=production. An operator's page: keep it off public networks.
   */
  readonly statusPage?: boolean;
  /** /ready answers 503 when the oldest change received and not yet applied is older than this (ms; default 30 000). */
  readonly readyMaxLagMs?: number;
  /**
   * Who may read. Without it every view is open to whoever reaches the port (a warning at start
   * unless the API listens on loopback only).
   */
  readonly auth?: AuthOptions;
  /**
   * Per view, per role: which rows, which fields, how large a page (modelled on Hasura's select
   * permissions). With `auth` set, a role reads only the views listed for it here.
   */
  readonly permissions?: {
    readonly [K in keyof V]?: Readonly<Record<string, ViewPermission<InferRow<V[K]>>>>;
  };
  /** Origins allowed to call the API from a browser (HTTP and WebSocket); none by default. */
  readonly cors?: CorsOptions;
  readonly limits?: ApiLimits;
  /** Where /metrics is served and who may read it. */
  readonly metrics?: MetricsOptions;
}

export interface AuthOptions {
  /** Bearer JWTs (`Authorization` header; over WebSocket also the `authorization` connection param). */
  readonly jwt?: JwtOptions;
  /** The role of a request without a token; without it such requests are refused (401). */
  readonly anonymousRole?: string;
}

export interface JwtOptions {
  /** HS256 shared secret; defaults to $CDC_VIEWS_JWT_SECRET. Give this or `jwksUrl`. */
  readonly secret?: string;
  /** A JWKS endpoint (RS256/ES256/EdDSA keys, fetched and re-fetched on an unknown `kid`: key rotation). */
  readonly jwksUrl?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /** Where the claims sit: a claim name holding an object (e.g. 'https://hasura.io/jwt/claims'); default the token's top level. */
  readonly claimsNamespace?: string;
  /** The claim naming the role; default 'role'. */
  readonly roleClaim?: string;
}

/** A value of a row filter: a constant, or a claim of the caller's token. */
export type ClaimRef = { readonly claim: string };

export interface ViewPermission<Row = Record<string, unknown>> {
  /** Rows this role sees: every listed field equals its value (a claim of the token, or a constant). Absent: all rows. */
  readonly filter?: { readonly [F in keyof Row]?: ClaimRef | NonNullable<Row[F]> };
  /** Fields this role may read (the view's key fields among them); absent: all. */
  readonly fields?: readonly (keyof Row & string)[];
  /** The largest page (`first`) this role may ask for; default the API's maximum (1000). */
  readonly maxPageSize?: number;
}

export interface CorsOptions {
  /** Exact origins, e.g. 'https://app.example.com'; '*' allows any origin without credentials. */
  readonly origins: readonly string[];
  /** Whether browsers may send cookies/credentials (never with '*'); default false. */
  readonly credentials?: boolean;
}

export interface ApiLimits {
  /** Deepest selection (default 10). */
  readonly maxDepth?: number;
  /** Aliases per operation (default 15). */
  readonly maxAliases?: number;
  /**
   * Cost of an operation as graphql-armor counts it (default 5000, or more when the largest page of a
   * view costs more: armor multiplies a list by a literal `first`, and a page of 1000 rows must pass).
   */
  readonly maxCost?: number;
  /** Tokens per document (default 1000). */
  readonly maxTokens?: number;
  /** Directives per operation (default 50). */
  readonly maxDirectives?: number;
  /** Bytes of an HTTP request body (default 64 KiB). */
  readonly maxBodyBytes?: number;
  /** Open connections (HTTP keep-alive, SSE, WebSocket) per client IP (default 100). */
  readonly maxConnectionsPerIp?: number;
  /** Subscriptions one WebSocket connection may hold (default 100). */
  readonly maxSubscriptionsPerConnection?: number;
  /** A WebSocket that answers no ping for this long is closed, its subscriptions released (ms; default 30 000). */
  readonly idleTimeoutMs?: number;
  /** Batched requests (an array of operations in one POST), off by default; the number allowed when on. */
  readonly batching?: number;
  /**
   * The largest view a list is sorted per request for, in an order the view does not declare with
   * `.indexBy(…)` (rows; default 1000). Larger views refuse such an order, naming the indexBy to add.
   */
  readonly sortInMemoryRows?: number;
}

export interface MetricsOptions {
  /** Serve /metrics on this port instead of the API's (e.g. reachable only inside the cluster). */
  readonly port?: number;
  readonly host?: string;
  /** A bearer token /metrics requires; defaults to $CDC_VIEWS_METRICS_TOKEN (none: open). */
  readonly token?: string;
}

export interface Config<V extends Record<string, ViewDef> = Record<string, ViewDef>> {
  /** Names this deployment's keys in Redis (`cdcv:{<name>}:…`); several deployments can share a Redis. */
  readonly name?: string;
  readonly source: SourceOptions;
  readonly redis?: RedisOptions;
  readonly api?: ApiOptions<V>;
  readonly views: V;
  /** Handlers that act when a view changes (`reaction(view, { when, handler })`), by name. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly reactions?: Readonly<Record<string, ReactionDef<any>>>;
}

/** Declare the service: a source, Redis, and the views. Returns the config unchanged, typed. */
export function defineConfig<const V extends Record<string, ViewDef>>(config: Config<V>): Config<V> {
  return config;
}
