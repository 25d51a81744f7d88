/**
 * The view-definition API: what users write in `views.config.ts`.
 *
 * ```ts
 * const orders = table('public.orders', { id: 'int4', customer_id: 'int4', status: 'text', amount: 'numeric?' }, { key: 'id' });
 *
 * export default defineConfig({
 *   source: source.postgres({ url: process.env.DATABASE_URL }),
 *   views: {
 *     revenueByCustomer: view(orders)
 *       .where((o) => eq(o.status, 'paid'))
 *       .groupBy((o) => ({ customerId: o.customer_id }))
 *       .select((o) => ({ orders: count(), revenue: sum(o.amount), largest: max(o.amount) })),
 *   },
 * });
 * type Row = InferRow<typeof config.views.revenueByCustomer>;
 * //   { customerId: number; orders: string; revenue: string | null; largest: string | null }
 * ```
 *
 * Expressions are data (expr.ts), never callbacks run per row: the planner can see what each view
 * reads, evaluate it incrementally, and print it as SQL.
 *
 * Column types are PostgreSQL's names; a trailing `?` marks a nullable column. Exact numbers
 * (int8, numeric, and every count and sum) are strings in TypeScript and GraphQL, so no digit is
 * ever rounded.
 */
import type { ColumnType } from '../ingest/values.ts';
import type { SourceOptions } from '../ingest/source-options.ts';
import type { DurabilityOptions } from './store/durability.ts';
import {
  arithmeticType,
  avgType,
  sumType,
  type AggregateFn,
  type AggregateNode,
  type ArithmeticFn,
  type ColumnNode,
  type ComparisonFn,
  type ExprNode,
  type LiteralNode,
  type ScalarFn,
} from './expr.ts';

// ---------------------------------------------------------------------------------------------
// Types: column specs → TypeScript types

/** A column declaration: a PostgreSQL type name, with `?` when the column may be NULL. */
export type ColumnSpec = ColumnType | `${ColumnType}?`;

type SpecType<S extends ColumnSpec> = S extends `${infer T extends ColumnType}?` ? T : S extends ColumnType ? S : never;
type SpecNullable<S extends ColumnSpec> = S extends `${ColumnType}?` ? true : false;

/** The TypeScript type of a non-null value of a column type (see ingest/values.ts). */
export type TsType<T extends ColumnType> = T extends 'bool'
  ? boolean
  : T extends 'int2' | 'int4' | 'float4' | 'float8'
    ? number
    : T extends 'json' | 'jsonb'
      ? JsonValue
      : string;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** The TypeScript type of a value of type T that may be null when N is true. */
export type TsValue<T extends ColumnType, N extends boolean> = TsType<T> | (true extends N ? null : never);

declare const phantom: unique symbol;

/** A typed scalar expression: T is its column type, N whether it may be NULL. */
export interface Expr<T extends ColumnType = ColumnType, N extends boolean = boolean> {
  readonly node: ExprNode;
  readonly [phantom]?: { type: T; nullable: N };
}

/** A typed aggregate (count, sum, avg, min, max), allowed only in the select of a grouped view. */
export interface Aggregate<T extends ColumnType = ColumnType, N extends boolean = boolean> {
  readonly node: AggregateNode;
  readonly [phantom]?: { type: T; nullable: N; aggregate: true };
}

/** The column references a `where`, `groupBy` or `select` callback receives. */
export type Columns<C extends Record<string, ColumnSpec>> = {
  readonly [K in keyof C & string]: Expr<SpecType<C[K]>, SpecNullable<C[K]>>;
};

type OutputOf<E> =
  E extends Expr<infer T, infer N> ? TsValue<T, N> : E extends Aggregate<infer T, infer N> ? TsValue<T, N> : never;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

export type RowOf<S> = Simplify<{ -readonly [K in keyof S]: OutputOf<S[K]> }>;

// ---------------------------------------------------------------------------------------------
// Tables

export interface ColumnInfo {
  readonly type: ColumnType;
  readonly nullable: boolean;
}

/** A source table: its schema-qualified name, typed columns and primary key. */
export interface TableDef<C extends Record<string, ColumnSpec> = Record<string, ColumnSpec>> {
  readonly kind: 'table';
  readonly name: string;
  readonly columns: Readonly<Record<keyof C & string, ColumnInfo>>;
  readonly key: readonly (keyof C & string)[];
  /** The declaration as written (for error messages). */
  readonly specs: C;
}

/**
 * Declare a source table.
 *
 * @example
 * const orders = table('public.orders', { id: 'int4', status: 'text', amount: 'numeric?' }, { key: 'id' });
 */
export function table<const C extends Record<string, ColumnSpec>>(
  name: string,
  columns: C,
  options: { key: (keyof C & string) | readonly (keyof C & string)[] },
): TableDef<C> {
  const info: Record<string, ColumnInfo> = {};
  for (const [column, spec] of Object.entries(columns)) {
    const s = String(spec);
    info[column] = { type: s.replace(/\?$/, '') as ColumnType, nullable: s.endsWith('?') };
  }
  const key = typeof options?.key === 'string' ? [options.key] : [...(options?.key ?? [])];
  return Object.freeze({ kind: 'table', name, columns: Object.freeze(info), key, specs: columns }) as TableDef<C>;
}

function columnRefs(t: TableDef): Record<string, Expr> {
  const refs: Record<string, Expr> = {};
  for (const [column, { type, nullable }] of Object.entries(t.columns)) {
    const node: ColumnNode = { kind: 'column', table: t.name, column, type, nullable };
    refs[column] = { node };
  }
  // Referencing a column that is not declared yields a node that validation reports by name.
  return new Proxy(refs, {
    get(target, prop) {
      if (typeof prop !== 'string' || prop in target) return target[prop as string];
      return { node: { kind: 'column', table: t.name, column: prop, type: 'text', nullable: true, undeclared: true } };
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Views

export interface SelectField {
  readonly name: string;
  readonly node: ExprNode | AggregateNode;
}

/**
 * A declared view. R is its row type (see `InferRow`). Views are plain data: `from`, an optional
 * `where`, optional `groupBy` fields and the `select` fields.
 */
export interface ViewDef<R = Record<string, unknown>> {
  readonly kind: 'view';
  readonly from: TableDef;
  readonly where: ExprNode | null;
  /** Group fields (the view's key), or null for a row-per-source-row view keyed by the primary key. */
  readonly groupBy: readonly SelectField[] | null;
  readonly select: readonly SelectField[];
  readonly [phantom]?: R;
}

/** The row type of a view. */
export type InferRow<V> = V extends ViewDef<infer R> ? R : never;

type Predicate = Expr<'bool', boolean>;

class ViewBuilder<C extends Record<string, ColumnSpec>> {
  private readonly from: TableDef<C>;
  private readonly predicate: ExprNode | null;

  constructor(from: TableDef<C>, predicate: ExprNode | null) {
    this.from = from;
    this.predicate = predicate;
  }

  /** Keep only rows for which the predicate is true (NULL counts as false, as in SQL). */
  where(predicate: (row: Columns<C>) => Predicate): ViewBuilder<C> {
    const node = predicate(columnRefs(this.from as TableDef) as Columns<C>).node;
    return new ViewBuilder(this.from, this.predicate ? and({ node: this.predicate }, { node }).node : node);
  }

  /** Aggregate rows per group. The group fields become the view's key. */
  groupBy<const G extends Record<string, Expr>>(fields: (row: Columns<C>) => G): GroupedViewBuilder<C, G> {
    const g = fields(columnRefs(this.from as TableDef) as Columns<C>);
    return new GroupedViewBuilder(this.from, this.predicate, toFields(g));
  }

  /** One view row per source row; the view's key is the table's primary key, which must be selected. */
  select<const S extends Record<string, Expr>>(fields: (row: Columns<C>) => S): ViewDef<RowOf<S>> {
    const s = fields(columnRefs(this.from as TableDef) as Columns<C>);
    return Object.freeze({ kind: 'view', from: this.from as TableDef, where: this.predicate, groupBy: null, select: toFields(s) });
  }
}

class GroupedViewBuilder<C extends Record<string, ColumnSpec>, G extends Record<string, Expr>> {
  private readonly from: TableDef<C>;
  private readonly predicate: ExprNode | null;
  private readonly groups: readonly SelectField[];
  /** Phantom: the group fields' types, for the row type. */
  declare private readonly groupTypes?: G;

  constructor(from: TableDef<C>, predicate: ExprNode | null, groups: readonly SelectField[]) {
    this.from = from;
    this.predicate = predicate;
    this.groups = groups;
  }

  /** The aggregates computed per group. */
  select<const S extends Record<string, Aggregate>>(fields: (row: Columns<C>) => S): ViewDef<RowOf<G & S>> {
    const s = fields(columnRefs(this.from as TableDef) as Columns<C>);
    return Object.freeze({
      kind: 'view',
      from: this.from as TableDef,
      where: this.predicate,
      groupBy: this.groups,
      select: toFields(s),
    });
  }
}

function toFields(record: Record<string, { node: ExprNode | AggregateNode }>): SelectField[] {
  return Object.entries(record).map(([name, e]) => ({ name, node: e?.node }));
}

/**
 * Start a view over a table.
 *
 * @example
 * view(orders).where((o) => eq(o.status, 'paid')).select((o) => ({ id: o.id, amount: o.amount }))
 */
export function view<C extends Record<string, ColumnSpec>>(from: TableDef<C>): ViewBuilder<C> {
  return new ViewBuilder(from, null);
}

// ---------------------------------------------------------------------------------------------
// Scalar functions

export type Literal = string | number | boolean;
type Operand = Expr | Literal;
type NullableOf<E> = E extends Expr<ColumnType, infer N> ? N : false;

function literalNode(value: Literal, like: ColumnType | undefined): LiteralNode {
  if (typeof value === 'boolean') return { kind: 'literal', value, type: 'bool', nullable: false };
  if (typeof value === 'number') {
    const type = like ?? (Number.isInteger(value) ? 'int4' : 'numeric');
    return { kind: 'literal', value: type === 'int8' || type === 'numeric' ? String(value) : value, type, nullable: false };
  }
  return { kind: 'literal', value, type: like ?? 'text', nullable: false };
}

function operandNode(x: Operand, like?: ColumnType): ExprNode {
  return typeof x === 'object' && x !== null ? x.node : literalNode(x, like);
}

function call(fn: ScalarFn, args: ExprNode[], type: ColumnType, nullable: boolean): Expr<never, never> {
  return { node: { kind: 'call', fn, args, type, nullable } } as Expr<never, never>;
}

function comparison(fn: ComparisonFn) {
  return <A extends Operand, B extends Operand>(a: A, b: B): Expr<'bool', NullableOf<A> | NullableOf<B>> => {
    const left = operandNode(a, typeof b === 'object' ? b.node.type : undefined);
    const right = operandNode(b, left.type);
    return call(fn, [left, right], 'bool', left.nullable || right.nullable);
  };
}

/** a = b */
export const eq = comparison('eq');
/** a <> b */
export const ne = comparison('ne');
/** a < b (text compares by code point, as `COLLATE "C"`) */
export const lt = comparison('lt');
/** a <= b */
export const lte = comparison('lte');
/** a > b */
export const gt = comparison('gt');
/** a >= b */
export const gte = comparison('gte');

/** a AND b AND … (SQL three-valued logic) */
export function and<E extends Predicate[]>(...predicates: E): Expr<'bool', NullableOf<E[number]>> {
  const args = predicates.map((p) => p.node);
  return call('and', args, 'bool', args.some((a) => a.nullable));
}
/** a OR b OR … (SQL three-valued logic) */
export function or<E extends Predicate[]>(...predicates: E): Expr<'bool', NullableOf<E[number]>> {
  const args = predicates.map((p) => p.node);
  return call('or', args, 'bool', args.some((a) => a.nullable));
}
/** NOT a */
export function not<N extends boolean>(predicate: Expr<'bool', N>): Expr<'bool', N> {
  return call('not', [predicate.node], 'bool', predicate.node.nullable);
}
/** a IS NULL */
export function isNull(e: Expr): Expr<'bool', false> {
  return call('isNull', [e.node], 'bool', false);
}
/** a IS NOT NULL */
export function isNotNull(e: Expr): Expr<'bool', false> {
  return call('isNotNull', [e.node], 'bool', false);
}
/** a IN (v1, v2, …) */
export function oneOf<T extends ColumnType, N extends boolean>(e: Expr<T, N>, values: readonly Literal[]): Expr<'bool', N> {
  return call('in', [e.node, ...values.map((v) => literalNode(v, e.node.type))], 'bool', e.node.nullable);
}

type NumericType = 'int2' | 'int4' | 'int8' | 'numeric' | 'float4' | 'float8';
type ArithType<A, B> = A extends 'float4' | 'float8'
  ? 'float8'
  : B extends 'float4' | 'float8'
    ? 'float8'
    : A extends 'numeric'
      ? 'numeric'
      : B extends 'numeric'
        ? 'numeric'
        : A extends 'int8'
          ? 'int8'
          : B extends 'int8'
            ? 'int8'
            : 'int4';
/** An operand's type; a literal takes the type of the other operand, as in SQL. */
type OperandType<X, Other> = X extends Expr<infer T, boolean> ? T : Other extends Expr<infer T, boolean> ? T : 'int4';
type NumOperand = Expr<NumericType> | number | string;

function arithmetic<F extends ArithmeticFn>(fn: F) {
  return <A extends NumOperand, B extends NumOperand>(
    a: A,
    b: B,
  ): Expr<ArithType<OperandType<A, B>, OperandType<B, A>>, NullableOf<A> | NullableOf<B> | (F extends 'div' ? true : never)> => {
    const left = operandNode(a, typeof b === 'object' ? b.node.type : undefined);
    const right = operandNode(b, left.type);
    // Division by zero yields NULL (printed as `a / NULLIF(b, 0)`), so a view never fails on a row.
    return call(fn, [left, right], arithmeticType(left.type, right.type), left.nullable || right.nullable || fn === 'div');
  };
}

/** a + b */
export const add = arithmetic('add');
/** a - b */
export const sub = arithmetic('sub');
/** a * b */
export const mul = arithmetic('mul');
/** a / b — integer division for integers (as in SQL); NULL when b is 0. */
export const div = arithmetic('div');

/** The first non-null argument. */
export function coalesce<T extends ColumnType, N extends boolean>(
  e: Expr<T, boolean>,
  fallback: Expr<T, N> | Literal,
): Expr<T, N> {
  const f = operandNode(fallback, e.node.type);
  return call('coalesce', [e.node, f], e.node.type, f.nullable);
}
/** lower(text) */
export function lower<N extends boolean>(e: Expr<'text' | 'varchar' | 'bpchar', N>): Expr<'text', N> {
  return call('lower', [e.node], 'text', e.node.nullable);
}
/** upper(text) */
export function upper<N extends boolean>(e: Expr<'text' | 'varchar' | 'bpchar', N>): Expr<'text', N> {
  return call('upper', [e.node], 'text', e.node.nullable);
}
/** a || b || … (NULL if any part is NULL, as in SQL) */
export function concat<E extends (Expr | string)[]>(...parts: E): Expr<'text', NullableOf<E[number]>> {
  const args = parts.map((p) => operandNode(p, 'text'));
  return call('concat', args, 'text', args.some((a) => a.nullable));
}

// ---------------------------------------------------------------------------------------------
// Aggregates

function aggregate(fn: AggregateFn, arg: ExprNode | null, type: ColumnType, nullable: boolean): Aggregate<never, never> {
  return { node: { kind: 'aggregate', fn, arg, type, nullable } } as Aggregate<never, never>;
}

/** count(*), or count(e): the rows where e is not NULL. A BigInt. */
export function count(e?: Expr): Aggregate<'int8', false> {
  return aggregate('count', e?.node ?? null, 'int8', false);
}

type SumType<T> = T extends 'int2' | 'int4' ? 'int8' : T extends 'float4' | 'float8' ? 'float8' : 'numeric';
type AvgType<T> = T extends 'float4' | 'float8' ? 'float8' : 'numeric';

/** sum(e): exact for integers and numerics (int4 → int8, int8 → numeric, as in PostgreSQL). NULL when every value is NULL. */
export function sum<T extends NumericType>(e: Expr<T>): Aggregate<SumType<T>, true> {
  return aggregate('sum', e.node, sumType(e.node.type), true);
}
/** avg(e): numeric for integers and numerics (PostgreSQL's digits), float8 for floats. */
export function avg<T extends NumericType>(e: Expr<T>): Aggregate<AvgType<T>, true> {
  return aggregate('avg', e.node, avgType(e.node.type), true);
}
/** min(e): exact under deletes (the next smallest value takes over). Text compares as `COLLATE "C"`. */
export function min<T extends ColumnType>(e: Expr<T>): Aggregate<T, true> {
  return aggregate('min', e.node, e.node.type, true);
}
/** max(e): exact under deletes. Text compares as `COLLATE "C"`. */
export function max<T extends ColumnType>(e: Expr<T>): Aggregate<T, true> {
  return aggregate('max', e.node, e.node.type, true);
}

// ---------------------------------------------------------------------------------------------
// Config

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
