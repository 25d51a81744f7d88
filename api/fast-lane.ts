/**
 * The fast lane for the requests apps send most: a JSON POST of a query document already seen.
 * Yoga answers every request through a WHATWG Request/Response adapter and the envelop pipeline,
 * which costs several times the work of the read itself; here a query whose (role, document,
 * operation) parsed and validated cleanly before — through the same envelop parse and validate as
 * yoga's, so every limit (depth, aliases, cost, tokens, directives) applied — is compiled once into
 * JavaScript by graphql-jit (same resolvers, same scalars; graphql-js for documents with input-object
 * variables), executed, and written to the socket.
 *
 * Anything else takes yoga's path, so behaviour stays yoga's: GET, SSE, CORS (an Origin header),
 * a body without Content-Length or past the limit, batches, subscriptions, an unknown document (it
 * is compiled for next time), a caller the gate refuses, and any result with errors (queries are
 * reads: running one again through yoga, for its error masking and status codes, is harmless).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { execute, getNamedType, getOperationAST, isInputObjectType, typeFromAST, type ExecutionResult, type GraphQLSchema, type OperationDefinitionNode } from 'graphql';
import { compileQuery, isCompiledQuery } from 'graphql-jit';
import type { YogaServerInstance } from 'graphql-yoga';
import type { SchemaContext, ViewDataSource } from '../schema/build-schema.ts';
import type { Caller } from '../schema/permissions.ts';
import type { AuthGate } from './auth.ts';

interface Compiled {
  readonly run: (context: SchemaContext, variables: Record<string, unknown> | undefined) => Promise<ExecutionResult> | ExecutionResult;
}

/** Documents kept per (role, operation, query): a dashboard sends a handful of them. */
const MAX_DOCUMENTS = 1_000;

export interface FastLaneOptions {
  readonly gate: AuthGate;
  readonly views: ViewDataSource;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly yoga: YogaServerInstance<any, any>;
  readonly maxBodyBytes: number;
  /** Counts requests by the path they took. */
  readonly onServed?: (lane: 'fast' | 'yoga') => void;
}

export class FastLane {
  private readonly options: FastLaneOptions;
  private readonly compiled = new Map<string, Compiled | null>();

  constructor(options: FastLaneOptions) {
    this.options = options;
  }

  /** Whether the request may take the fast lane, from its headers alone (its body is not read yet). */
  accepts(req: IncomingMessage): boolean {
    const h = req.headers;
    const length = Number(h['content-length']);
    const accept = h.accept;
    return (
      req.method === 'POST' &&
      req.url === '/graphql' &&
      h.origin === undefined &&
      (h['content-type'] ?? '').startsWith('application/json') &&
      Number.isInteger(length) &&
      length > 0 &&
      length <= this.options.maxBodyBytes &&
      (accept === undefined || accept === '*/*' || (accept.includes('application/json') && !accept.includes('graphql-response')))
    );
  }

  /** Serves a request `accepts` let through: directly when it can, else through yoga with the body already read. */
  async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    let learn: (() => void) | null = null;
    try {
      const params = JSON.parse(body.toString('utf8')) as { query?: unknown; variables?: unknown; operationName?: unknown };
      if (typeof params === 'object' && params !== null && !Array.isArray(params) && typeof params.query === 'string') {
        const query = params.query;
        const operationName = typeof params.operationName === 'string' ? params.operationName : undefined;
        const caller = await this.options.gate.cachedCaller(req.headers.authorization);
        if (caller) {
          const compiled = this.compiled.get(documentKey(caller, query, operationName));
          if (compiled && (await this.direct(res, compiled, caller, params.variables))) return;
          // The first time, yoga answers (and reports any error); once it answered cleanly, the fast lane serves the next ones.
          if (compiled === undefined) learn = () => this.compile(caller, query, operationName);
        }
      }
    } catch {
      // Anything unexpected: yoga's path says it properly.
    }
    const clean = await this.viaYoga(req, res, body);
    if (clean) learn?.();
  }

  private async direct(res: ServerResponse, compiled: Compiled, caller: Caller, variables: unknown): Promise<boolean> {
    const context: SchemaContext = this.options.gate.context(this.options.views, { caller });
    const result = await compiled.run(context, (variables ?? undefined) as Record<string, unknown> | undefined);
    if (result.errors) return false;
    // As readExtensions does on yoga's path: the versions read at, and whether `atLeast` was reached.
    const extensions = Object.keys(context.extensions).length > 0 ? { ...result.extensions, cdcViews: context.extensions } : result.extensions;
    const text = JSON.stringify(extensions ? { data: result.data, extensions } : { data: result.data });
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    this.options.onServed?.('fast');
    return true;
  }

  /**
   * The (role, operation, query) compiled by envelop's parse and validate — yoga's own, with the
   * limits' rules — or null when it is not a clean query (yoga answers it every time).
   */
  private compile(caller: Caller, query: string, operationName: string | undefined): void {
    let entry: Compiled | null = null;
    try {
      const enveloped = this.options.yoga.getEnveloped({ caller });
      const document = enveloped.parse(query);
      const errors = enveloped.validate(enveloped.schema, document);
      const operation = getOperationAST(document, operationName);
      if (errors.length === 0 && operation?.operation === 'query') {
        const schema = enveloped.schema;
        if (takesInputObjects(schema, operation)) {
          // graphql-jit compiles a parser for each variable's type and does not end on recursive input
          // types (a where's and/or): such documents run on graphql-js, still without yoga around them.
          entry = { run: (context, variables) => execute({ schema, document, operationName, variableValues: variables, contextValue: context }) as Promise<ExecutionResult> | ExecutionResult };
        } else {
          const jit = compileQuery(schema, document, operationName);
          if (isCompiledQuery(jit)) entry = { run: (context, variables) => jit.query(undefined, context, variables) };
        }
      }
    } catch {
      entry = null;
    }
    if (this.compiled.size >= MAX_DOCUMENTS) this.compiled.delete(this.compiled.keys().next().value!);
    this.compiled.set(documentKey(caller, query, operationName), entry);
  }

  /** Yoga answers; true when that was a clean 200 (no errors), after which the document may be compiled. */
  private async viaYoga(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<boolean> {
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || name === 'content-length') continue;
      headers.set(name, Array.isArray(value) ? value.join(', ') : value);
    }
    const response = await this.options.yoga.fetch(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/graphql'}`, { method: 'POST', headers, body });
    const text = Buffer.from(await response.arrayBuffer());
    const out: Record<string, string> = {};
    response.headers.forEach((value, name) => (out[name] = value));
    res.writeHead(response.status, { ...out, 'content-length': String(text.length) });
    res.end(text);
    this.options.onServed?.('yoga');
    return response.status === 200 && !text.includes('"errors"');
  }
}

/** Whether a variable of the operation is (a list of) an input object. */
function takesInputObjects(schema: GraphQLSchema, operation: OperationDefinitionNode): boolean {
  return (operation.variableDefinitions ?? []).some((v) => {
    const type = typeFromAST(schema, v.type as Parameters<typeof typeFromAST>[1]);
    return type !== undefined && isInputObjectType(getNamedType(type));
  });
}

function documentKey(caller: Caller, query: string, operationName: string | undefined): string {
  return `${caller.role ?? ''}\u0000${operationName ?? ''}\u0000${query}`;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
