/**
 * What one client may ask of the API (config `api.limits` and `api.cors`): graphql-armor's limits on
 * a document, CORS and the same Origin check on WebSocket upgrades, open connections per client IP,
 * subscriptions per WebSocket, and the HTTP server's timeouts. The defaults are ApiLimits' own.
 */
import type { IncomingMessage, ServerResponse, Server } from 'node:http';
import type { Socket } from 'node:net';
import { blockFieldSuggestionsPlugin } from '@escape.tech/graphql-armor-block-field-suggestions';
import { costLimitPlugin, costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import { GraphQLError, GraphQLObjectType, GraphQLSchema, GraphQLString, parse, validate, type ValidationContext } from 'graphql';
import type { ConnectionInitMessage } from 'graphql-ws';
import type { useServer } from 'graphql-ws/use/ws';
import type { Plugin, YogaInitialContext, YogaServerOptions } from 'graphql-yoga';
import { MAX_PAGE_SIZE } from '../schema/build-schema.ts';
import { SORT_IN_MEMORY_ROWS } from '../schema/list-inputs.ts';
import type { ApiLimits, CorsOptions } from '../views/config.ts';
import type { Registry } from '../views/registry.ts';

export type ResolvedLimits = Required<Omit<ApiLimits, 'batching'>> & { readonly batching: number | null };

export function resolveLimits(limits: ApiLimits | undefined, registry: Registry): ResolvedLimits {
  return {
    maxDepth: limits?.maxDepth ?? 10,
    maxAliases: limits?.maxAliases ?? 15,
    maxCost: limits?.maxCost ?? Math.max(5000, largestPageCost(registry)),
    maxTokens: limits?.maxTokens ?? 1000,
    maxDirectives: limits?.maxDirectives ?? 50,
    maxBodyBytes: limits?.maxBodyBytes ?? 64 * 1024,
    maxConnectionsPerIp: limits?.maxConnectionsPerIp ?? 100,
    maxSubscriptionsPerConnection: limits?.maxSubscriptionsPerConnection ?? 100,
    idleTimeoutMs: limits?.idleTimeoutMs ?? 30_000,
    batching: limits?.batching ?? null,
    sortInMemoryRows: limits?.sortInMemoryRows ?? SORT_IN_MEMORY_ROWS,
  };
}

/**
 * graphql-armor multiplies a list's cost by a literal `first`: one full page (first: 1000) of a
 * six-field view costs 26 000. The default cost limit admits the largest page of every view, so
 * the page size the API allows is not refused by default, while fifteen aliased pages are.
 */
function largestPageCost(registry: Registry): number {
  const stub = new GraphQLSchema({ query: new GraphQLObjectType({ name: 'Query', fields: { stub: { type: GraphQLString } } }) });
  let largest = 0;
  for (const view of registry.views) {
    const fields = view.fields.map((f) => f.name).join(' ');
    const page = parse(`{ ${view.name}List(first: ${MAX_PAGE_SIZE}) { nodes { ${fields} } pageInfo { hasNextPage endCursor } version } }`);
    // The rule only counts the document's shape: any schema will do.
    validate(stub, page, [costLimitRule({ maxCost: Number.MAX_SAFE_INTEGER, onAccept: [(_, { n }: { n: number }) => (largest = Math.max(largest, n))] })]);
  }
  return Math.ceil(largest);
}

/**
 * graphql-armor as envelop plugins: yoga runs them over HTTP, and `getEnveloped` over WebSocket.
 * Field suggestions ("Did you mean …") would reveal the schema that turning introspection off hides.
 */
export function armorPlugins(limits: ResolvedLimits, blockFieldSuggestions: boolean): Plugin[] {
  // Reported like any validation error (HTTP 400 for graphql-response+json; over WebSocket an error
  // of the operation) rather than thrown out of validate(). Tokens must throw: they stop the parser.
  const reported = { propagateOnRejection: false, onReject: [(context: ValidationContext | null, error: GraphQLError) => context?.reportError(error)] };
  return [
    maxTokensPlugin<YogaInitialContext>({ n: limits.maxTokens }),
    maxDepthPlugin<YogaInitialContext>({ n: limits.maxDepth, ...reported }),
    maxAliasesPlugin<YogaInitialContext>({ n: limits.maxAliases, ...reported }),
    costLimitPlugin<YogaInitialContext>({ maxCost: limits.maxCost, ...reported }),
    maxDirectivesPlugin<YogaInitialContext>({ n: limits.maxDirectives, ...reported }),
    ...(blockFieldSuggestions ? [blockFieldSuggestionsPlugin<YogaInitialContext>()] : []),
  ];
}

/** Yoga's own limit (Content-Length, then counted while streaming) says only "too large": say which limit. */
export function explainBodyLimit(error: unknown, maxBodyBytes: number): unknown {
  if (!(error instanceof GraphQLError) || error.extensions['code'] !== 'REQUEST_ENTITY_TOO_LARGE') return error;
  return new GraphQLError(`Expected a request body of at most ${maxBodyBytes} bytes (api.limits.maxBodyBytes), but found more`, {
    // The rest of the body is not read: close instead of draining it for keep-alive.
    extensions: { code: 'REQUEST_ENTITY_TOO_LARGE', http: { status: 413, headers: { connection: 'close' } } },
  });
}

/**
 * Yoga's `cors` option. Without it yoga would reflect any Origin with credentials; here only listed
 * origins get CORS headers (none without `api.cors`), and credentials only when configured.
 */
export function corsPolicy(cors: CorsOptions | undefined): NonNullable<YogaServerOptions<object, object>['cors']> {
  return (request: Request) => {
    const origin = request.headers.get('origin');
    if (!cors || origin === null || !(cors.origins.includes('*') || cors.origins.includes(origin))) return false;
    return { origin: [...cors.origins], credentials: cors.credentials === true };
  };
}

/**
 * Whether a WebSocket upgrade may proceed: browsers send the page's Origin (and cookies, so a foreign
 * page must not ride on them); clients that send no Origin are not browsers. A page of this very
 * host (the Host header its browser sent) is same-origin, as it is for HTTP.
 */
export function isOriginAllowed(cors: CorsOptions | undefined, origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return true;
  if (cors?.origins.includes('*') || cors?.origins.includes(origin)) return true;
  return host !== undefined && URL.canParse(origin) && new URL(origin).host === host;
}

/**
 * Node's HTTP timeouts from `idleTimeoutMs`: headers must arrive within 10 s (or sooner), a whole
 * request within idleTimeoutMs (a 64 KiB body needs far less), so slow or silent connections go.
 * Neither cuts an SSE stream: they only run until the request has arrived, not while answering.
 */
export function httpTimeouts(limits: ResolvedLimits): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  const headersTimeout = Math.min(10_000, limits.idleTimeoutMs);
  // Node checks the two timeouts on this interval (30 s by default: too coarse for a 10 s timeout).
  return { headersTimeout, requestTimeout: limits.idleTimeoutMs, connectionsCheckingInterval: Math.max(100, Math.floor(headersTimeout / 4)) };
}

export interface ConnectionLimit {
  /** Answers 429 and closes when this request's connection is one too many for its IP. */
  refuse(req: IncomingMessage, res: ServerResponse): boolean;
  /** The reason to refuse this WebSocket upgrade, or null. */
  refusal(req: IncomingMessage): string | null;
}

/**
 * Counts every TCP connection (keep-alive HTTP, SSE, WebSocket) per client IP while it is open. A
 * connection over the limit is not counted and is answered 429 on its first request. Behind a
 * proxy every client has the proxy's address: the limit then applies to the proxy.
 */
export function limitConnectionsPerIp(server: Server, max: number): ConnectionLimit {
  const open = new Map<string, number>();
  const refused = new WeakSet<Socket>();
  server.on('connection', (socket: Socket) => {
    const ip = clientIp(socket);
    const count = open.get(ip) ?? 0;
    if (count >= max) return void refused.add(socket);
    open.set(ip, count + 1);
    socket.once('close', () => {
      const left = (open.get(ip) ?? 1) - 1;
      if (left === 0) open.delete(ip);
      else open.set(ip, left);
    });
  });
  const refusal = (req: IncomingMessage): string | null =>
    refused.has(req.socket) ? `Expected at most ${max} open connections from ${clientIp(req.socket)} (api.limits.maxConnectionsPerIp), but found more: close some first` : null;
  return {
    refusal,
    refuse(req, res) {
      const message = refusal(req);
      if (message === null) return false;
      res.writeHead(429, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ errors: [{ message, extensions: { code: 'TOO_MANY_CONNECTIONS' } }] }));
      return true;
    },
  };
}

function clientIp(socket: Socket): string {
  const address = socket.remoteAddress ?? 'unknown';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/**
 * graphql-ws's `onSubscribe` with the per-connection cap, and with errors thrown by parse (a syntax
 * error, graphql-armor's token limit) answered as errors of that one operation: thrown, graphql-ws
 * would close the whole socket.
 */
export function limitSubscriptions(max: number, onSubscribe: OnSubscribe): OnSubscribe {
  return async (ctx, id, params) => {
    // The operation being subscribed is already in `subscriptions`.
    if (Object.keys(ctx.subscriptions).length > max) {
      return [new GraphQLError(`Expected at most ${max} subscriptions on one connection (api.limits.maxSubscriptionsPerConnection), but found one more: complete one, or open another connection`, { extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } })];
    }
    try {
      return await onSubscribe(ctx, id, params);
    } catch (error) {
      if (error instanceof GraphQLError) return [error];
      throw error;
    }
  };
}

type OnSubscribe = NonNullable<Parameters<typeof useServer<ConnectionInitMessage['payload']>>[0]['onSubscribe']>;
