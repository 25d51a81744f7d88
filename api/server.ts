/**
 * HTTP: GraphQL (queries, and subscriptions over SSE) via graphql-yoga, subscriptions over
 * WebSocket (graphql-ws) on the same path, /health, /ready and /metrics.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NoSchemaIntrospectionCustomRule, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, maskError, type Plugin } from 'graphql-yoga';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SchemaContext, ViewDataSource } from '../schema/build-schema.ts';
import type { AuthGate } from './auth.ts';
import type { ApiLimits, CorsOptions, MetricsOptions } from '../views/config.ts';
import type { Registry } from '../views/registry.ts';
import { armorPlugins, corsPolicy, explainBodyLimit, httpTimeouts, isOriginAllowed, limitConnectionsPerIp, limitSubscriptions, resolveLimits } from './limits.ts';
import type { Metrics } from './metrics.ts';
import { FastLane } from './fast-lane.ts';
import { pushSharedResults, SharedSubscriptions } from './shared-subscriptions.ts';
import { metricsHandler, startMetricsServer, type MetricsServer } from './metrics-endpoint.ts';

export interface ApiOptions {
  readonly registry: Registry;
  /** The views to serve; null on an ingest-only instance (no GraphQL: /health, /ready, /metrics). */
  readonly views: ViewDataSource | null;
  /** Who may call, and what each caller reads (api/auth.ts). */
  readonly gate: AuthGate;
  readonly metrics: Metrics;
  /** /ready: whether to take traffic, and why not. */
  readonly health: () => { ready: boolean; body: unknown };
  readonly port: number;
  readonly host: string;
  /** GraphiQL and introspection (development). */
  readonly development: boolean;
  readonly logError?: (error: unknown) => void;
  /** Config `api.limits`, `api.cors`, `api.metrics` (see api/limits.ts). */
  readonly limits?: ApiLimits | undefined;
  readonly cors?: CorsOptions | undefined;
  readonly metricsEndpoint?: MetricsOptions | undefined;
  /** /status, its assets and /status.json (api/status-page.ts); null when off. */
  readonly statusPage?: ((path: string, req: IncomingMessage, res: ServerResponse) => boolean) | null;
}

export interface ApiServer {
  readonly url: string;
  readonly server: Server;
  /** On the API's port, or on `api.metrics.port`. */
  readonly metricsUrl: string;
  close(): Promise<void>;
}

/** What the resolvers noted about a query (versions read at, `atLeast` reached) goes out in `extensions.cdcViews`. */
function readExtensions(): Plugin {
  return {
    onExecute: () => ({
      onExecuteDone: ({ args, result, setResult }) => {
        const noted = (args.contextValue as Partial<SchemaContext>).extensions;
        if (!noted || Object.keys(noted).length === 0 || Symbol.asyncIterator in result) return;
        setResult({ ...result, extensions: { ...result.extensions, cdcViews: noted } });
      },
    }),
  };
}

/** Introspection off outside development (Hasura's and Yoga's production advice). */
function disableIntrospection(): Plugin {
  return {
    onValidate({ addValidationRule }) {
      addValidationRule(NoSchemaIntrospectionCustomRule);
    },
  };
}

export async function startApi(options: ApiOptions): Promise<ApiServer> {
  // Each operation runs against the schema of its caller's role (the gate's plugin sets it).
  const gate = options.gate;
  const limits = resolveLimits(options.limits, options.registry);
  const shared = new SharedSubscriptions({ onPayload: () => options.metrics.subscriptionPayload() });
  const yoga = createYoga<Record<string, unknown>, SchemaContext>({
    context: (initial) => gate.context(options.views!, initial),
    graphqlEndpoint: '/graphql',
    graphiql: options.development ? { title: 'cdc-views', defaultQuery: defaultQuery(options.registry) } : false,
    landingPage: false,
    logging: false,
    // Clients see only PublicError messages; everything else is logged in full and masked.
    maskedErrors: {
      maskError(error, message, isDev) {
        const explained = explainBodyLimit(error, limits.maxBodyBytes);
        const masked = maskError(explained, message, isDev);
        if (masked !== explained) options.logError?.(error);
        return masked;
      },
    },
    maxRequestBodySize: limits.maxBodyBytes,
    batching: limits.batching === null ? false : { limit: limits.batching },
    cors: corsPolicy(options.cors),
    plugins: [gate.plugin(), readExtensions(), shared.plugin(), ...(options.development ? [] : [disableIntrospection()]), ...armorPlugins(limits, !options.development)],
  });

  const fastLane = options.views && new FastLane({ gate, views: options.views, yoga, maxBodyBytes: limits.maxBodyBytes, onServed: (lane) => options.metrics.graphqlRequest(lane) });
  const serveMetrics = metricsHandler(options.metrics, options.metricsEndpoint, options.logError);
  const metricsPort = options.metricsEndpoint?.port;
  const server = createServer(httpTimeouts(limits), (req: IncomingMessage, res: ServerResponse) => {
    if (connections.refuse(req, res)) return;
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') return void sendJson(res, 200, { status: 'ok' });
    if (path === '/ready') {
      const { ready, body } = options.health();
      return void sendJson(res, ready ? 200 : 503, body);
    }
    // With a port of its own, /metrics is not served here (yoga answers 404).
    if (path === '/metrics' && metricsPort === undefined) return serveMetrics(req, res);
    if (path && options.statusPage?.(path, req, res)) return;
    if (path === '/') {
      res.writeHead(302, { location: '/graphql' });
      return void res.end();
    }
    if (!options.views) return void sendJson(res, 404, { error: 'This instance only keeps the views (--ingest-only); GraphQL is served by the API instances' });
    if (fastLane?.accepts(req)) {
      return void fastLane.serve(req, res).catch((error: unknown) => {
        options.logError?.(error);
        res.destroy();
      });
    }
    options.metrics.graphqlRequest('yoga');
    void yoga(req, res);
  });

  const connections = limitConnectionsPerIp(server, limits.maxConnectionsPerIp);
  const wsServer = new WebSocketServer({
    server,
    path: '/graphql',
    // Over WebSocket as over HTTP, no message larger than a request body may be.
    maxPayload: limits.maxBodyBytes,
    verifyClient: ({ req, origin }: { req: IncomingMessage; origin: string | undefined }, allow: (ok: boolean, code?: number, message?: string) => void) => {
      if (!options.views) return allow(false, 404, 'No GraphQL on an ingest-only instance');
      const refusal = connections.refusal(req);
      if (refusal !== null) return allow(false, 429, refusal);
      if (!isOriginAllowed(options.cors, origin, req.headers.host)) return allow(false, 403, `Expected an Origin listed in api.cors.origins, but found ${origin}`);
      allow(true);
    },
  });
  useServer<Record<string, unknown> | undefined, Record<PropertyKey, never>>(
    {
      onConnect: (ctx) => gate.connect(ctx),
      execute: (args: ExecutionArgs) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args: ExecutionArgs) => (args.rootValue as Enveloped).subscribe(args),
      onSubscribe: limitSubscriptions(limits.maxSubscriptionsPerConnection, async (ctx, id, params) => {
        const enveloped = yoga.getEnveloped({ ...ctx, req: ctx.extra.request, socket: ctx.extra.socket, params, caller: gate.connectionCaller(ctx.extra) });
        const args = {
          schema: enveloped.schema,
          operationName: params.operationName,
          document: enveloped.parse(params.query),
          variableValues: params.variables,
          contextValue: await enveloped.contextFactory(),
          rootValue: {
            execute: enveloped.execute,
            subscribe: async (subscription: ExecutionArgs) => pushSharedResults(await enveloped.subscribe(subscription), id, (message) => sendTo(ctx.extra.socket, message)),
          },
        };
        const errors = enveloped.validate(args.schema, args.document);
        return errors.length > 0 ? errors : args;
      }),
    },
    wsServer,
    // graphql-ws pings this often and terminates a socket whose pong is another interval late.
    limits.idleTimeoutMs / 2,
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = options.host === '0.0.0.0' || options.host === '::' ? 'localhost' : options.host;
  let metricsServer: MetricsServer | null = null;
  if (metricsPort !== undefined) {
    try {
      metricsServer = await startMetricsServer(serveMetrics, metricsPort, options.metricsEndpoint?.host ?? options.host);
    } catch (error) {
      server.close();
      throw error;
    }
  }
  return {
    url: `http://${host}:${address.port}/graphql`,
    server,
    metricsUrl: metricsServer?.url ?? `http://${host}:${address.port}/metrics`,
    async close() {
      await metricsServer?.close();
      for (const client of wsServer.clients) client.terminate();
      await new Promise<void>((r) => wsServer.close(() => r()));
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

type OperationResult = ReturnType<NonNullable<Parameters<typeof useServer>[0]['execute']>>;
interface Enveloped {
  execute: (args: ExecutionArgs) => OperationResult;
  subscribe: (args: ExecutionArgs) => OperationResult;
}

/** As graphql-ws sends over `ws`: nothing to a socket that is closing; resolved once written. */
function sendTo(socket: WebSocket, message: string): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.readyState !== socket.OPEN) return resolve();
    socket.send(message, (error) => (error ? reject(error) : resolve()));
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function defaultQuery(registry: Registry): string {
  const view = registry.views[0];
  if (!view) return '';
  const fields = view.fields.map((f) => f.name).join(' ');
  return `# cdc-views: every view is a query, a page query and a subscription.\n\nquery FirstPage {\n  ${view.name}List(first: 10) {\n    version\n    nodes { ${fields} }\n  }\n}\n\nsubscription Live {\n  ${view.name}Changes {\n    version op\n    row { ${fields} }\n  }\n}\n`;
}
