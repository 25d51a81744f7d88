/**
 * The GraphQL schema, derived from the view definitions. Per view `revenueByCustomer`:
 *
 *   type RevenueByCustomer { customerId: Int!  orders: BigInt!  revenue: Decimal … }
 *   Query.revenueByCustomer(customerId: Int!): RevenueByCustomer                   by key
 *   Query.revenueByCustomerList(first: Int = 100, after: String, where: RevenueByCustomerWhere,
 *         orderBy: [RevenueByCustomerOrderBy!]): RevenueByCustomerConnection!
 *         → { nodes, edges { cursor node }, pageInfo { hasNextPage endCursor }, totalCount, version }
 *   Subscription.revenueByCustomerChanges(customerId: Int, where: RevenueByCustomerWhere, since: String, snapshot: Boolean = false)
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
import type { ListPage, ListRequest } from '../views/store/list.ts';
import { FILTER_SCAN_BUDGET, type ViewChange, type ViewRow } from '../views/store/read.ts';
import { decodeCursor, describeOrderings, encodeCursor, indexByHint, listInputTypes, resolveOrdering, SORT_IN_MEMORY_ROWS } from './list-inputs.ts';
import { compileWhere } from './where.ts';
import { PublicError } from './errors.ts';
import { MAX_PAGE_SIZE, narrowedBy, rowVisible, type Caller, type RoleShape, type ViewAccess } from './permissions.ts';
import { scalarFor } from './scalars.ts';

/** What the resolvers need from wherever views live. */
export interface ViewDataSource {
  /** One row by key (or null), with the view's version it was read at. */
  row(view: CompiledView, key: string): Promise<{ row: ViewRow | null; version: string }>;
  /** Wait (bounded) until the view holds at least this version or source position; whether it did. */
  reach(view: CompiledView, target: ReadTarget): Promise<boolean>;
  /** Rows after a member in key order or an ordering, only those `keep` accepts (views/store/list.ts). */
  list(view: CompiledView, request: ListRequest): Promise<ListPage>;
  /**
   * Rows that `keep` keeps. `as`: the filter's identity (the access route) and the version of the
   * page it goes with — a count taken at that version may be served again while the view holds it.
   */
  count(view: CompiledView, keep: ((row: ViewRow) => boolean) | null, as?: { readonly filter: string; readonly version: string }): Promise<{ count: number | null; rowCount: number }>;
  /** Changes after `since` (or from now); with `snapshot`, the current rows first (op SNAPSHOT). */
  changes(view: CompiledView, options: ChangeStreamOptions): AsyncIterable<SubscriptionEvent>;
}

export interface ChangeStreamOptions {
  readonly since: string | null;
  readonly snapshot: boolean;
  /** Only changes to this encoded key, when given. */
  readonly key: string | null;
  /** What the subscriber may see: its row filter, and the route of subscribers sharing it. */
  readonly access: ViewAccess;
  readonly signal?: AbortSignal;
}

export type SubscriptionEvent = Omit<ViewChange, 'op'> & {
  readonly op: ViewChange['op'] | 'snapshot';
  /** The last change of a source transaction this subscription sees, or the last row of a snapshot. */
  readonly transactionEnd?: boolean;
};

/** What a read waits for with `atLeast`: a version of the view, or a source position (a PostgreSQL LSN). */
export type ReadTarget = { readonly version: string } | { readonly lsn: bigint };

/** `atLeast` as a client may send it: a view version ('1733000000000-0') or a PostgreSQL LSN ('0/16B3748'). */
export function parseReadTarget(text: string): ReadTarget {
  if (text.length <= 41 && /^\d{1,20}-\d{1,20}$/.test(text)) return { version: text };
  const lsn = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  if (lsn) return { lsn: (BigInt(`0x${lsn[1]}`) << 32n) | BigInt(`0x${lsn[2]}`) };
  throw new PublicError(
    `Expected atLeast to be a version of the view ('1733000000000-0', from a page or a change) or a PostgreSQL LSN ('0/16B3748', from SELECT pg_current_wal_lsn() after your commit), but found '${text.slice(0, 41)}${text.length > 41 ? '…' : ''}'`,
    'BAD_USER_INPUT',
  );
}

export interface SchemaContext {
  readonly views: ViewDataSource;
  /** Said about this response in `extensions.cdcViews`: versions read at, whether `atLeast` was reached. */
  readonly extensions: { versions?: Record<string, string>; atLeastReached?: Record<string, boolean> };
  /** Who is asking. */
  readonly caller: Caller;
  /** What the caller may read of a view (throws FORBIDDEN when nothing). */
  readonly access: (view: CompiledView) => ViewAccess;
}

export { MAX_PAGE_SIZE };

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

/**
 * A change stream that lets go the moment its client does. An async generator waiting for its next
 * event would only see `return()` after that event (a subscription to a quiet key would be held for
 * ever): the signal wakes it at once.
 */
export function releasedOnReturn<T>(open: (signal: AbortSignal) => AsyncIterable<T>, expiresAt: number | null = null): AsyncIterableIterator<T> {
  const controller = new AbortController();
  const inner = open(controller.signal)[Symbol.asyncIterator]();
  const release = async (): Promise<IteratorResult<T>> => {
    controller.abort();
    clearTimeout(timer);
    await inner.return?.();
    return { done: true, value: undefined };
  };
  // The subscriber's token expires: the stream ends with an error saying so (a new token resumes it with `since`).
  let onExpiry: ((error: Error) => void) | null = null;
  const expired = new Promise<never>((_, reject) => (onExpiry = reject));
  expired.catch(() => undefined);
  const timer =
    expiresAt === null
      ? undefined
      : setTimeout(() => {
          onExpiry!(new PublicError('The token of this subscription expired; subscribe again with a fresh token (and since: the last version you have)', 'TOKEN_EXPIRED'));
          void release();
        }, Math.max(0, Math.min(expiresAt - Date.now(), 2 ** 31 - 1)));
  return {
    next: () => (expiresAt === null ? inner.next() : Promise.race([inner.next(), expired])),
    return: release,
    throw: async (error?: unknown) => {
      await release();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

const AT_LEAST_ARG = {
  type: GraphQLString,
  description:
    "Read-your-writes: wait (up to 5 s) until the view holds this version (from a page or a change) or this PostgreSQL LSN ('0/16B3748': SELECT pg_current_wal_lsn() after your commit), then read.",
};

/** Waits for `atLeast` when given; whether it was reached (null without one), also said in the extensions. */
async function waitForAtLeast(ctx: SchemaContext, view: CompiledView, atLeast: string | null | undefined): Promise<boolean | null> {
  if (atLeast === null || atLeast === undefined) return null;
  const reached = await servable(ctx.views.reach(view, parseReadTarget(atLeast)));
  (ctx.extensions.atLeastReached ??= {})[view.name] = reached;
  return reached;
}

export interface SchemaOptions {
  /** The largest view a list sorts per request in an order it has no index for (api.limits.sortInMemoryRows). */
  readonly sortInMemoryRows?: number;
}

/** A list's rows filtered by the caller's row filter and `where`; null: every row. */
function keeper(access: ViewAccess): ((row: ViewRow) => boolean) | null {
  return access.filter.length === 0 && access.where === undefined ? null : (row) => rowVisible(access, row);
}

/**
 * The schema of every view, or (with a role's shape) of the views and fields one role may read.
 */
export function buildSchema(registry: Registry, shape: RoleShape | null = null, options: SchemaOptions = {}): GraphQLSchema {
  const sortInMemoryRows = options.sortInMemoryRows ?? SORT_IN_MEMORY_ROWS;
  const query: GraphQLFieldConfigMap<unknown, SchemaContext> = {};
  const subscription: GraphQLFieldConfigMap<unknown, SchemaContext> = {};

  for (const view of registry.views) {
    const readable = shape ? shape(view) : { fields: null };
    if (!readable) continue;
    const typeName = pascal(view.name);
    const rowType = new GraphQLObjectType({
      name: typeName,
      description: `View ${view.name}: ${describe(view)}.\n\n${view.sql}`,
      fields: Object.fromEntries(
        view.fields.filter((f) => readable.fields?.has(f.name) ?? true).map((f) => {
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
        totalCount: {
          type: GraphQLInt,
          description: `Rows matching \`where\` (and the caller's row filter), all pages together. Without a filter O(1); with one, counted only for views of at most ${FILTER_SCAN_BUDGET} rows (otherwise null, with an error saying so).`,
          resolve: (connection: { totalCount: () => Promise<number> }) => connection.totalCount(),
        },
        version: {
          type: new GraphQLNonNull(GraphQLString),
          description: `The view's version when this page was read: subscribe with \`since\` to continue from it.`,
        },
        atLeastReached: {
          type: GraphQLBoolean,
          description: 'With `atLeast`: whether the view had reached it when read (false: read anyway after waiting up to 5 s). Null without `atLeast`.',
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
        transactionEnd: {
          type: new GraphQLNonNull(GraphQLBoolean),
          description:
            'True on the last change of a source transaction that this subscription receives, and on the last row of a snapshot: a client that applies changes up to here at once holds the view as it was after a commit, never half of a transaction.',
        },
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
      description: `One row of ${view.name} by its key. The version it was read at is in \`extensions.cdcViews.versions\`.`,
      args: { ...keyArgs(true), atLeast: AT_LEAST_ARG },
      resolve: async (_, args, ctx) => {
        const access = ctx.access(view);
        await waitForAtLeast(ctx, view, args['atLeast'] as string | null | undefined);
        const { row, version } = await servable(ctx.views.row(view, keyFromArgs(view, args)));
        (ctx.extensions.versions ??= {})[view.name] = version;
        return rowVisible(access, row) ? row : null;
      },
    };
    query[view.name] = byKey as GraphQLFieldConfig<unknown, SchemaContext>;

    const inputs = listInputTypes(view, typeName, readable.fields);
    const indexed = describeOrderings(view);
    type ListArgs = { first: number; after?: string | null; atLeast?: string | null; where?: unknown; orderBy?: { field: string; direction?: 'asc' | 'desc' }[] | null };
    const list: GraphQLFieldConfig<unknown, SchemaContext, ListArgs> = {
      type: new GraphQLNonNull(connectionType),
      description: `Rows of ${view.name}, a page at a time (at most ${MAX_PAGE_SIZE}), in key order or \`orderBy\`, only those matching \`where\`. A filtered page examines at most ${FILTER_SCAN_BUDGET} rows: it may hold fewer rows than asked, follow hasNextPage.`,
      args: {
        first: { type: GraphQLInt, defaultValue: 100 },
        after: { type: GraphQLString },
        where: { type: inputs.where },
        ...(inputs.orderBy
          ? {
              orderBy: {
                type: inputs.orderBy,
                description: `Order by these fields, then by the key (ascending). ${indexed ? `Indexed, for any size of view: ${indexed}. Any other order` : 'No order is indexed (declare one with .indexBy on the view); any order but the key'} is sorted per request, only while the view holds at most ${sortInMemoryRows} rows.`,
              },
            }
          : {}),
        atLeast: AT_LEAST_ARG,
      },
      resolve: async (_, { first, after, atLeast, where, orderBy }, ctx) => {
        const access = narrowedBy(ctx.access(view), compileWhere(view, where, readable.fields));
        const reached = await waitForAtLeast(ctx, view, atLeast);
        if (!Number.isInteger(first) || first < 0 || first > access.maxPageSize) {
          throw new PublicError(`Expected first to be between 0 and ${access.maxPageSize}, but found ${first}`, 'BAD_USER_INPUT');
        }
        const ordering = resolveOrdering(view, orderBy);
        const afterMember = after ? decodeCursor(view, ordering, after) : null;
        const keep = keeper(access);
        const isIndexed = ordering === null || view.orderings.includes(ordering);
        const page = await servable(ctx.views.list(view, { ordering, indexed: isIndexed, after: afterMember, limit: first + 1, keep, keepKey: access.route, sortInMemoryRows }));
        if (page.tooLarge) {
          throw new PublicError(
            `Expected an indexed orderBy for ${view.name}List (${indexed || 'none declared'}): it holds more than ${sortInMemoryRows} rows (api.limits.sortInMemoryRows) to sort per request. Declare ${indexByHint(ordering!)} on view ${view.name}`,
            'BAD_USER_INPUT',
          );
        }
        const rows = page.rows.slice(0, first);
        const edges = rows.map((r) => ({ cursor: encodeCursor(view, ordering, r.member), node: r.row }));
        // A filtered read that ran out of budget continues after the last row it examined.
        const more = page.rows.length > first || page.scannedTo !== null;
        const endCursor = page.rows.length <= first && page.scannedTo !== null ? encodeCursor(view, ordering, page.scannedTo) : (edges.at(-1)?.cursor ?? null);
        const totalCount = async (): Promise<number> => {
          const { count, rowCount } = keep === null ? { count: page.rowCount, rowCount: page.rowCount } : await servable(ctx.views.count(view, keep, { filter: access.route, version: page.version }));
          if (count === null) {
            throw new PublicError(`Expected a view of at most ${FILTER_SCAN_BUDGET} rows to count with a where or a row filter, but ${view.name} holds ${rowCount}: page through it instead`, 'BAD_USER_INPUT');
          }
          return count;
        };
        return { nodes: rows.map((r) => r.row), edges, pageInfo: { hasNextPage: more, endCursor }, totalCount, version: page.version, atLeastReached: reached };
      },
    };
    query[`${view.name}List`] = list as GraphQLFieldConfig<unknown, SchemaContext>;

    const changes: GraphQLFieldConfig<SubscriptionEvent, SchemaContext, Record<string, unknown>> = {
      type: new GraphQLNonNull(changeType),
      description: `Every change to ${view.name}, pushed as it commits. Key arguments narrow it to one row, \`where\` to matching rows; \`since\` resumes after a version; \`snapshot\` first sends the current rows.`,
      args: {
        ...keyArgs(false),
        where: { type: inputs.where, description: 'Only changes of rows matching this: a row that starts matching arrives as an INSERT, one that stops as a DELETE (key, no row).' },
        since: { type: GraphQLString, description: 'Resume after this version (from a page or an earlier change).' },
        snapshot: { type: GraphQLBoolean, defaultValue: false, description: 'Start with the current rows (op SNAPSHOT), then every change after them.' },
      },
      subscribe: (_, args, ctx) => {
        const hasKey = view.keyFields.some((f) => args[f.name] !== undefined);
        const access = narrowedBy(ctx.access(view), compileWhere(view, args['where'], readable.fields));
        return releasedOnReturn(
          (signal) =>
            ctx.views.changes(view, {
              since: (args['since'] as string | null | undefined) ?? null,
              snapshot: args['snapshot'] === true,
              key: hasKey ? keyFromArgs(view, args) : null,
              access,
              signal,
            }),
          ctx.caller.expiresAt,
        );
      },
      resolve: (event) => ({
        ...event,
        key: event.op === 'reset' ? null : Object.fromEntries(view.keyFields.map((f) => [f.name, (event.row ?? event.previous)?.[f.name] ?? null])),
        reason: event.reason ?? null,
        transactionEnd: event.transactionEnd ?? false,
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
