/**
 * HTTP: GraphQL (queries, and subscriptions over SSE) via graphql-yoga, subscriptions over
 * WebSocket (graphql-ws) on the same path, /health, /ready and /metrics.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NoSchemaIntrospectionCustomRule, type ExecutionArgs } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, maskError, type Plugin } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { buildSchema, type SchemaContext, type ViewDataSource } from '../schema/build-schema.ts';
import type { Registry } from '../views/registry.ts';
import type { Metrics } from './metrics.ts';

export interface ApiOptions {
  readonly registry: Registry;
  readonly views: ViewDataSource;
  readonly metrics: Metrics;
  /** /ready: whether to take traffic, and why not. */
  readonly health: () => { ready: boolean; body: unknown };
  readonly port: number;
  readonly host: string;
  /** GraphiQL and introspection (development). */
  readonly development: boolean;
  readonly logError?: (error: unknown) => void;
}

export interface ApiServer {
  readonly url: string;
  readonly server: Server;
  close(): Promise<void>;
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
  const schema = buildSchema(options.registry);
  const context: SchemaContext = { views: options.views };
  const yoga = createYoga<Record<string, unknown>, SchemaContext>({
    schema,
    context,
    graphqlEndpoint: '/graphql',
    graphiql: options.development ? { title: 'cdc-views', defaultQuery: defaultQuery(options.registry) } : false,
    landingPage: false,
    logging: false,
    // Clients see only PublicError messages; everything else is logged in full and masked.
    maskedErrors: {
      maskError(error, message, isDev) {
        const masked = maskError(error, message, isDev);
        if (masked !== error) options.logError?.(error);
        return masked;
      },
    },
    plugins: options.development ? [] : [disableIntrospection()],
  });

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') return void sendJson(res, 200, { status: 'ok' });
    if (path === '/ready') {
      const { ready, body } = options.health();
      return void sendJson(res, ready ? 200 : 503, body);
    }
    if (path === '/metrics') {
      options.metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': options.metrics.registry.contentType });
          res.end(text);
        },
        (error: unknown) => {
          options.logError?.(error);
          sendJson(res, 500, { error: 'metrics failed' });
        },
      );
      return;
    }
    if (path === '/') {
      res.writeHead(302, { location: '/graphql' });
      return void res.end();
    }
    void yoga(req, res);
  });

  const wsServer = new WebSocketServer({ server, path: '/graphql' });
  useServer(
    {
      execute: (args: ExecutionArgs) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args: ExecutionArgs) => (args.rootValue as Enveloped).subscribe(args),
      onSubscribe: async (ctx, _id, params) => {
        const enveloped = yoga.getEnveloped({ ...ctx, req: ctx.extra.request, socket: ctx.extra.socket, params });
        const args = {
          schema: enveloped.schema,
          operationName: params.operationName,
          document: enveloped.parse(params.query),
          variableValues: params.variables,
          contextValue: await enveloped.contextFactory(),
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
        };
        const errors = enveloped.validate(args.schema, args.document);
        return errors.length > 0 ? errors : args;
      },
    },
    wsServer,
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const host = options.host === '0.0.0.0' || options.host === '::' ? 'localhost' : options.host;
  return {
    url: `http://${host}:${address.port}/graphql`,
    server,
    async close() {
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
