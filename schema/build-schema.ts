/**
 * The GraphQL schema, derived from the view definitions. Per view `revenueByCustomer`:
 *
 *   type RevenueByCustomer { customerId: Int!  orders: BigInt!  revenue: Decimal … }
 *   Query.revenueByCustomer(customerId: Int!): RevenueByCustomer                   by key
 *   Query.revenueByCustomerList(first: Int = 100, after: String): RevenueByCustomerConnection!
 *         → { nodes, edges { cursor node }, pageInfo { hasNextPage endCursor }, version }
 *   Subscription.revenueByCustomerChanges(customerId: Int, since: String, snapshot: Boolean = false)
 *         → RevenueByCustomerChange { version op key row previous }
 *
 * Reading is delegated to a ViewDataSource (the API implements it over Redis), so this module is
 * only about shape: it builds the same schema for a config whether or not anything is running.
 */
import {
  GraphQLBoolean,
  GraphQLEnumType,
  GraphQLInt,
  GraphQLList,
  GraphQLNonNull,
  GraphQLObjectType,
  GraphQLSchema,
  GraphQLString,
  lexicographicSortSchema,
  printSchema,
  type GraphQLFieldConfig,
  type GraphQLFieldConfigArgumentMap,
  type GraphQLFieldConfigMap,
  type GraphQLInputType,
  type GraphQLOutputType,
} from 'graphql';
import type { Value } from '../core/values.ts';
import { encodeRowKey } from '../core/encoding.ts';
import { ViewUnavailableError } from '../views/errors.ts';
import type { CompiledView, Registry } from '../views/registry.ts';
import type { ViewChange, ViewRow } from '../views/store/read.ts';
import { PublicError } from './errors.ts';
import { scalarFor } from './scalars.ts';

/** What the resolvers need from wherever views live. */
export interface ViewDataSource {
  row(view: CompiledView, key: string): Promise<ViewRow | null>;
  page(view: CompiledView, afterKey: string | null, limit: number): Promise<{ version: string; rows: { key: string; row: ViewRow }[] }>;
  /** Changes after `since` (or from now); with `snapshot`, the current rows first (op SNAPSHOT). */
  changes(view: CompiledView, options: ChangeStreamOptions): AsyncIterable<SubscriptionEvent>;
}

export interface ChangeStreamOptions {
  readonly since: string | null;
  readonly snapshot: boolean;
  /** Only changes to this encoded key, when given. */
  readonly key: string | null;
  readonly signal?: AbortSignal;
}

export type SubscriptionEvent = Omit<ViewChange, 'op'> & { readonly op: ViewChange['op'] | 'snapshot' };

export interface SchemaContext {
  readonly views: ViewDataSource;
}

export const MAX_PAGE_SIZE = 1000;

const pascal = (name: string): string => name.charAt(0).toUpperCase() + name.slice(1);

const PageInfo = new GraphQLObjectType({
  name: 'PageInfo',
  fields: {
    hasNextPage: { type: new GraphQLNonNull(GraphQLBoolean) },
    endCursor: { type: GraphQLString, description: 'Pass as `after` to read the next page.' },
  },
});

const ChangeOp = new GraphQLEnumType({
  name: 'ChangeOp',
  values: {
    SNAPSHOT: { value: 'snapshot', description: 'A row as it was at the subscription start (with `snapshot: true`).' },
    INSERT: { value: 'insert' },
    UPDATE: { value: 'update' },
    DELETE: { value: 'delete' },
    RESET: {
      value: 'reset',
      description:
        'The view starts over (rebuilt, stopped, or changes this subscription needed are gone): drop the rows you hold; a SNAPSHOT of the current rows follows once the view is servable, then every change after it. `reason` says why.',
    },
  },
});

/** node-redis errors of a connection that is down (by name: schema/ does not import the client). */
const STORE_DOWN = new Set(['ClientOfflineError', 'ClientClosedError', 'SocketClosedUnexpectedlyError', 'ConnectionTimeoutError']);

/** A view that cannot be served now, or a store that is down, becomes a client-facing error with its reason. */
async function servable<T>(read: Promise<T>): Promise<T> {
  try {
    return await read;
  } catch (error) {
    if (error instanceof ViewUnavailableError) throw new PublicError(error.message, 'VIEW_UNAVAILABLE');
    if (error instanceof Error && (STORE_DOWN.has(error.constructor.name) || STORE_DOWN.has(error.name))) {
      throw new PublicError('The store of the views (Redis) is unreachable right now; retry shortly', 'STORE_UNAVAILABLE');
    }
    throw error;
  }
}

export function encodeCursor(key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): string {
  return Buffer.from(cursor, 'base64url').toString('utf8');
}

/** The encoded key from key arguments (absent nullable arguments mean NULL, as GROUP BY groups NULLs). */
function keyFromArgs(view: CompiledView, args: Record<string, unknown>): string {
  return encodeRowKey(
    view.keyTypes,
    view.keyFields.map((f) => (args[f.name] ?? null) as Value),
  );
}

/** What one row of a view is, in words. */
function describe(view: CompiledView): string {
  const sources = [...view.reads.map((r) => r.table.name), ...view.dependsOn.map((d) => `view ${d}`)].join(', ');
  if (view.kind === 'aggregate') return `one row per group, over ${sources}`;
  if (view.kind === 'topN') return `the first ${view.definition.limit} rows${view.definition.per?.length ? ' of each group' : ''}, over ${sources}`;
  return `one row per row of ${sources}`;
}

export function buildSchema(registry: Registry): GraphQLSchema {
  const query: GraphQLFieldConfigMap<unknown, SchemaContext> = {};
  const subscription: GraphQLFieldConfigMap<unknown, SchemaContext> = {};

  for (const view of registry.views) {
    const typeName = pascal(view.name);
    const rowType = new GraphQLObjectType({
      name: typeName,
      description: `View ${view.name}: ${describe(view)}.\n\n${view.sql}`,
      fields: Object.fromEntries(
        view.fields.map((f) => {
          const scalar: GraphQLOutputType = scalarFor(f.type);
          return [f.name, { type: f.nullable ? scalar : new GraphQLNonNull(scalar), ...(f.key ? { description: 'Key field.' } : {}) }];
        }),
      ),
    });
    const keyType = new GraphQLObjectType({
      name: `${typeName}Key`,
      fields: Object.fromEntries(
        view.keyFields.map((f) => {
          const scalar: GraphQLOutputType = scalarFor(f.type);
          return [f.name, { type: f.nullable ? scalar : new GraphQLNonNull(scalar) }];
        }),
      ),
    });
    const edgeType = new GraphQLObjectType({
      name: `${typeName}Edge`,
      fields: { cursor: { type: new GraphQLNonNull(GraphQLString) }, node: { type: new GraphQLNonNull(rowType) } },
    });
    const connectionType = new GraphQLObjectType({
      name: `${typeName}Connection`,
      fields: {
        nodes: { type: new GraphQLNonNull(new GraphQLList(new GraphQLNonNull(rowType))) },
        edges: { type: new GraphQLNonNull(new GraphQLList(new GraphQLNonNull(edgeType))) },
        pageInfo: { type: new GraphQLNonNull(PageInfo) },
        version: {
          type: new GraphQLNonNull(GraphQLString),
          description: `The view's version when this page was read: subscribe with \`since\` to continue from it.`,
        },
      },
    });
    const changeType = new GraphQLObjectType({
      name: `${typeName}Change`,
      fields: {
        version: { type: new GraphQLNonNull(GraphQLString), description: 'The view version after this change.' },
        op: { type: new GraphQLNonNull(ChangeOp) },
        key: { type: keyType, description: 'The key of the changed row (null for RESET).' },
        reason: { type: GraphQLString, description: 'Why the view starts over (RESET only).' },
        row: { type: rowType, description: 'The row after the change (null when deleted).' },
        previous: { type: rowType, description: 'The row before the change (null when inserted or in a snapshot).' },
      },
    });

    const keyArgs = (required: boolean): GraphQLFieldConfigArgumentMap =>
      Object.fromEntries(
        view.keyFields.map((f) => {
          const scalar = scalarFor(f.type) as GraphQLInputType;
          return [f.name, { type: required && !f.nullable ? new GraphQLNonNull(scalar) : scalar }];
        }),
      );

    const byKey: GraphQLFieldConfig<unknown, SchemaContext, Record<string, unknown>> = {
      type: rowType,
      description: `One row of ${view.name} by its key.`,
      args: keyArgs(true),
      resolve: (_, args, ctx) => servable(ctx.views.row(view, keyFromArgs(view, args))),
    };
    query[view.name] = byKey as GraphQLFieldConfig<unknown, SchemaContext>;

    const list: GraphQLFieldConfig<unknown, SchemaContext, { first: number; after?: string | null }> = {
      type: new GraphQLNonNull(connectionType),
      description: `Rows of ${view.name} in key order, a page at a time (at most ${MAX_PAGE_SIZE}).`,
      args: { first: { type: GraphQLInt, defaultValue: 100 }, after: { type: GraphQLString } },
      resolve: async (_, { first, after }, ctx) => {
        if (!Number.isInteger(first) || first < 0 || first > MAX_PAGE_SIZE) {
          throw new PublicError(`Expected first to be between 0 and ${MAX_PAGE_SIZE}, but found ${first}`);
        }
        const page = await servable(ctx.views.page(view, after ? decodeCursor(after) : null, first + 1));
        const rows = page.rows.slice(0, first);
        const edges = rows.map((r) => ({ cursor: encodeCursor(r.key), node: r.row }));
        return {
          nodes: rows.map((r) => r.row),
          edges,
          pageInfo: { hasNextPage: page.rows.length > first, endCursor: edges.at(-1)?.cursor ?? null },
          version: page.version,
        };
      },
    };
    query[`${view.name}List`] = list as GraphQLFieldConfig<unknown, SchemaContext>;

    const changes: GraphQLFieldConfig<SubscriptionEvent, SchemaContext, Record<string, unknown>> = {
      type: new GraphQLNonNull(changeType),
      description: `Every change to ${view.name}, pushed as it commits. Key arguments narrow it to one row; \`since\` resumes after a version; \`snapshot\` first sends the current rows.`,
      args: {
        ...keyArgs(false),
        since: { type: GraphQLString, description: 'Resume after this version (from a page or an earlier change).' },
        snapshot: { type: GraphQLBoolean, defaultValue: false, description: 'Start with the current rows (op SNAPSHOT), then every change after them.' },
      },
      subscribe: (_, args, ctx) => {
        const hasKey = view.keyFields.some((f) => args[f.name] !== undefined);
        return ctx.views.changes(view, {
          since: (args['since'] as string | null | undefined) ?? null,
          snapshot: args['snapshot'] === true,
          key: hasKey ? keyFromArgs(view, args) : null,
        });
      },
      resolve: (event) => ({
        ...event,
        key: event.op === 'reset' ? null : Object.fromEntries(view.keyFields.map((f) => [f.name, (event.row ?? event.previous)?.[f.name] ?? null])),
        reason: event.reason ?? null,
      }),
    };
    subscription[`${view.name}Changes`] = changes as GraphQLFieldConfig<unknown, SchemaContext>;
  }

  return new GraphQLSchema({
    query: new GraphQLObjectType({ name: 'Query', fields: query }),
    subscription: new GraphQLObjectType({ name: 'Subscription', fields: subscription }),
  });
}

/** The schema as SDL, sorted so it is stable across runs (committed as schema/schema.graphql). */
export function printViewSchema(registry: Registry): string {
  return printSchema(lexicographicSortSchema(buildSchema(registry)));
}
