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
import type { ColumnType } from '../core/values.ts';
import {
  canonicalTimeLiteral,
  castCanFail,
  castFromText,
  castProblem,
  castValue,
  commonType,
  modType,
  plainNumber,
  roundType,
  type CastTarget,
  type TruncUnit,
} from './functions.ts';
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

/** A typed aggregate (count, sum, avg, min, max, …), allowed only in the select of a grouped view. */
export interface Aggregate<T extends ColumnType = ColumnType, N extends boolean = boolean> {
  readonly node: AggregateNode;
  readonly [phantom]?: { type: T; nullable: N; aggregate: true };
}

/** The column references a callback receives for a table. */
export type Columns<C extends Record<string, ColumnSpec>> = {
  readonly [K in keyof C & string]: Expr<SpecType<C[K]>, SpecNullable<C[K]>>;
};

/** A field of a view: its column type and whether it may be NULL. */
export interface FieldSpec<T extends ColumnType = ColumnType, N extends boolean = boolean> {
  readonly type: T;
  readonly nullable: N;
}
export type FieldSpecs = Record<string, FieldSpec>;

type SpecOf<E> = E extends Expr<infer T, infer N> ? FieldSpec<T, N> : E extends Aggregate<infer T, infer N> ? FieldSpec<T, N> : never;
/** The fields a select (or group) record declares. */
export type FieldsOf<S> = { -readonly [K in keyof S]: SpecOf<S[K]> };

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** The column references a callback receives for a view used as a source (or for a view's own row). */
export type FieldColumns<F extends FieldSpecs> = { readonly [K in keyof F & string]: Expr<F[K]['type'], F[K]['nullable']> };

/** The same columns, all nullable: the side of a left join that may have no match. */
export type NullableColumns<C> = { readonly [K in keyof C]: C[K] extends Expr<infer T, boolean> ? Expr<T, true> : never };

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
  /** The same table under another name in a view (a table joined with itself). */
  as<const A extends string>(alias: A): Aliased<TableDef<C>>;
}

/** A table or view under an alias. */
export interface Aliased<S extends TableDef | ViewDef> {
  readonly kind: 'aliased';
  readonly source: S;
  readonly alias: string;
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
  const def: TableDef<C> = Object.freeze({
    kind: 'table' as const,
    name,
    columns: Object.freeze(info) as TableDef<C>['columns'],
    key,
    specs: columns,
    as: (alias: string) => Object.freeze({ kind: 'aliased' as const, source: def, alias }),
  });
  return def;
}

// ---------------------------------------------------------------------------------------------
// Views

/** What a view reads: a table or another view, under an alias (default: the table's name without its schema, or 'v'). */
export type Source = TableDef | ViewDef | Aliased<TableDef> | Aliased<ViewDef>;

type ColumnsOfSource<S> =
  S extends Aliased<infer T> ? ColumnsOfSource<T> : S extends TableDef<infer C> ? Columns<C> : S extends ViewDef<infer F> ? FieldColumns<F> : never;

/** A source as the definition keeps it. */
export interface SourceRef {
  readonly alias: string;
  readonly table: TableDef | null;
  readonly view: ViewDef | null;
}

export interface JoinClause {
  readonly kind: 'inner' | 'left';
  readonly source: SourceRef;
  readonly on: ExprNode;
}

export interface SelectField {
  readonly name: string;
  readonly node: ExprNode | AggregateNode;
}

export interface OrderTerm {
  readonly node: ExprNode;
  readonly desc: boolean;
}

/**
 * A declared view, as plain data: sources (joined), an optional `where`, optional `groupBy`
 * fields with aggregates in `select` (and a `groupFilter`: HAVING), or a `select` of expressions
 * (null: every field of its single source), and optionally the first `limit` rows in `order`
 * (per `per` group). F is its fields' types (see `InferRow`).
 */
export interface ViewDef<F extends FieldSpecs = FieldSpecs> {
  readonly kind: 'view';
  readonly from: SourceRef;
  readonly joins: readonly JoinClause[];
  readonly where: ExprNode | null;
  readonly groupBy: readonly SelectField[] | null;
  readonly select: readonly SelectField[] | null;
  /** HAVING: a predicate over the grouped row. */
  readonly groupFilter: ExprNode | null;
  readonly order: readonly OrderTerm[] | null;
  readonly limit: number | null;
  readonly per: readonly ExprNode[] | null;
  /** Orderings its list query serves from an index (`.indexBy`), each a list of terms over its fields. */
  readonly indexes?: readonly (readonly OrderTerm[])[];
  readonly [phantom]?: F;
}

/** The row type of a view. */
export type InferRow<V> = V extends ViewDef<infer F> ? Simplify<{ -readonly [K in keyof F]: TsValue<F[K]['type'], F[K]['nullable']> }> : never;

type Predicate = Expr<'bool', boolean>;
type OrderBy = Expr | OrderTerm;

/** Sort descending (NULLs first, as PostgreSQL's DESC does). */
export function desc(e: Expr): OrderTerm {
  return { node: e.node, desc: true };
}
/** Sort ascending (NULLs last, as PostgreSQL's ASC does); the default. */
export function asc(e: Expr): OrderTerm {
  return { node: e.node, desc: false };
}

function sourceRef(source: Source): SourceRef {
  const s = source as TableDef | ViewDef | Aliased<TableDef | ViewDef>;
  if (s?.kind === 'aliased') return { ...sourceRef(s.source), alias: s.alias };
  if (s?.kind === 'table') return { alias: s.name.slice(s.name.lastIndexOf('.') + 1), table: s, view: null };
  return { alias: 'v', table: null, view: (s as ViewDef) ?? null };
}

/** Column references of a source for callbacks; an undeclared name yields a node validation reports. */
function columnRefs(source: SourceRef, nullable = false): Record<string, Expr> {
  const refs: Record<string, Expr> = {};
  const name = source.table?.name ?? `view ${source.alias}`;
  const columns: Record<string, { type: ColumnType; nullable: boolean }> = source.table
    ? source.table.columns
    : Object.fromEntries(viewFields(source.view).map((f) => [f.name, { type: f.node.type, nullable: f.node.nullable }]));
  for (const [column, info] of Object.entries(columns)) {
    const node: ColumnNode = { kind: 'column', table: name, column, source: source.alias, type: info.type, nullable: info.nullable || nullable };
    refs[column] = { node };
  }
  return new Proxy(refs, {
    get(target, prop) {
      if (typeof prop !== 'string' || prop in target) return target[prop as string];
      return { node: { kind: 'column', table: name, column: prop, source: source.alias, type: 'text', nullable: true, undeclared: true } };
    },
  });
}

/** A view's output fields (group fields, then the select), or its single source's fields when it selects none. */
export function viewFields(def: ViewDef | null | undefined): SelectField[] {
  if (!def || def.kind !== 'view') return [];
  if (def.select === null) {
    const only = def.from;
    if (only.table) {
      return Object.entries(only.table.columns).map(([column, info]) => ({
        name: column,
        node: { kind: 'column', table: only.table!.name, column, source: only.alias, type: info.type, nullable: info.nullable },
      }));
    }
    return viewFields(only.view).map((f) => ({ name: f.name, node: { kind: 'column', table: `view ${only.alias}`, column: f.name, source: only.alias, type: f.node.type, nullable: f.node.nullable } }));
  }
  return [...(def.groupBy ?? []), ...def.select];
}

/**
 * References to a view's own output fields (for having, orderBy and per; reactions' conditions use
 * another `source` for the row before the change).
 */
export function outputRefs(fields: readonly SelectField[], source = '$'): Record<string, Expr> {
  const refs: Record<string, Expr> = {};
  for (const f of fields) refs[f.name] = { node: { kind: 'column', table: '', column: f.name, source, type: f.node.type, nullable: f.node.nullable } };
  return new Proxy(refs, {
    get(target, prop) {
      if (typeof prop !== 'string' || prop in target) return target[prop as string];
      return { node: { kind: 'column', table: '', column: prop, source, type: 'text', nullable: true, undeclared: true } };
    },
  });
}

interface Draft {
  readonly from: SourceRef;
  readonly joins: readonly JoinClause[];
  readonly where: ExprNode | null;
}

function andNodes(a: ExprNode | null, b: ExprNode): ExprNode {
  return a ? and({ node: a } as Predicate, { node: b } as Predicate).node : b;
}

class ViewBuilder<S extends readonly object[], F0 extends FieldSpecs> {
  readonly #draft: Draft;

  constructor(draft: Draft) {
    this.#draft = draft;
  }

  #refs(): Record<string, Expr>[] {
    const left = new Set(this.#draft.joins.filter((j) => j.kind === 'left').map((j) => j.source.alias));
    return [this.#draft.from, ...this.#draft.joins.map((j) => j.source)].map((s) => columnRefs(s, left.has(s.alias)));
  }

  #join(kind: 'inner' | 'left', source: Source, on: (...refs: Record<string, Expr>[]) => Predicate): Draft {
    const ref = sourceRef(source);
    const refs = [...this.#refs(), columnRefs(ref, kind === 'left')];
    return { ...this.#draft, joins: [...this.#draft.joins, { kind, source: ref, on: on(...refs).node }] };
  }

  /**
   * Rows of both sides whose `on` is TRUE. Call `.as('name')` on a table to join it with itself.
   *
   * @example
   * view(orders).join(customers, (o, c) => eq(o.customer_id, c.id))
   */
  join<X extends Source>(source: X, on: (...refs: [...S, ColumnsOfSource<X>]) => Predicate): ViewBuilder<[...S, ColumnsOfSource<X>], F0> {
    return new ViewBuilder(this.#join('inner', source, on as never));
  }

  /**
   * Every row of the left side, with the matching rows of the right side, or NULLs when none
   * matches (its columns are nullable in the callbacks that follow).
   *
   * @example
   * view(customers).leftJoin(orders, (c, o) => eq(o.customer_id, c.id))
   */
  leftJoin<X extends Source>(
    source: X,
    on: (...refs: [...S, NullableColumns<ColumnsOfSource<X>>]) => Predicate,
  ): ViewBuilder<[...S, NullableColumns<ColumnsOfSource<X>>], F0> {
    return new ViewBuilder(this.#join('left', source, on as never));
  }

  /** Keep only rows for which the predicate is true (NULL counts as false, as in SQL). */
  where(predicate: (...refs: S) => Predicate): ViewBuilder<S, F0> {
    const node = (predicate as unknown as (...r: Record<string, Expr>[]) => Predicate)(...this.#refs()).node;
    return new ViewBuilder({ ...this.#draft, where: andNodes(this.#draft.where, node) });
  }

  /** Aggregate rows per group. The group fields become the view's key. */
  groupBy<const G extends Record<string, Expr>>(fields: (...refs: S) => G): GroupedViewBuilder<S, G> {
    const g = (fields as unknown as (...r: Record<string, Expr>[]) => G)(...this.#refs());
    return new GroupedViewBuilder(this.#draft, toFields(g), this.#refs());
  }

  /**
   * One view row per source row (per combination of joined rows). The view's key is the primary
   * keys of its sources (a source joined on its whole primary key adds none), which must be selected.
   */
  select<const E extends Record<string, Expr>>(fields: (...refs: S) => E): ViewDefinition<FieldsOf<E>> {
    const s = (fields as unknown as (...r: Record<string, Expr>[]) => E)(...this.#refs());
    return new ViewDefinition({ ...this.#draft, groupBy: null, select: toFields(s), groupFilter: null, order: null, limit: null, per: null });
  }

  /**
   * The first rows of a single source (typically another view) in this order: finish with
   * `.limit(n)`, or `.limit(n, { per })` for the first n of each group (top-N).
   *
   * @example
   * view(revenueByCustomer).orderBy((r) => [desc(r.revenue)]).limit(10)
   */
  orderBy(order: (...refs: S) => readonly OrderBy[]): Ordered<F0> {
    const all = new ViewDefinition<F0>({ ...this.#draft, groupBy: null, select: null, groupFilter: null, order: null, limit: null, per: null });
    return all.orderBy(order as unknown as (row: FieldColumns<F0>) => readonly OrderBy[]);
  }
}

class GroupedViewBuilder<S extends readonly object[], G extends Record<string, Expr>> {
  readonly #draft: Draft;
  readonly #groups: readonly SelectField[];
  readonly #refs: Record<string, Expr>[];
  /** Phantom: the group fields' types, for the row type. */
  declare private readonly groupTypes?: G;

  constructor(draft: Draft, groups: readonly SelectField[], refs: Record<string, Expr>[]) {
    this.#draft = draft;
    this.#groups = groups;
    this.#refs = refs;
  }

  /** The aggregates computed per group. */
  select<const A extends Record<string, Aggregate>>(fields: (...refs: S) => A): ViewDefinition<FieldsOf<G> & FieldsOf<A>> {
    const s = (fields as unknown as (...r: Record<string, Expr>[]) => A)(...this.#refs);
    return new ViewDefinition({ ...this.#draft, groupBy: this.#groups, select: toFields(s), groupFilter: null, order: null, limit: null, per: null });
  }
}

interface Ordered<F extends FieldSpecs> {
  /** Keep the first `n` rows in this order, or the first `n` of each group (`per`). Ties are broken by the view's key. */
  limit(n: number, options?: { per?: (row: FieldColumns<F>) => readonly Expr[] }): ViewDefinition<F>;
}

type Fields = Omit<ViewDef, 'kind' | typeof phantom>;

/** A view as plain data, with the steps that may still follow (having, orderBy/limit). */
class ViewDefinition<F extends FieldSpecs> implements ViewDef<F> {
  readonly kind = 'view' as const;
  readonly from: SourceRef;
  readonly joins: readonly JoinClause[];
  readonly where: ExprNode | null;
  readonly groupBy: readonly SelectField[] | null;
  readonly select: readonly SelectField[] | null;
  readonly groupFilter: ExprNode | null;
  readonly order: readonly OrderTerm[] | null;
  readonly limit: number | null;
  readonly per: readonly ExprNode[] | null;
  readonly indexes: readonly (readonly OrderTerm[])[];
  declare readonly [phantom]?: F;

  constructor(fields: Fields) {
    this.from = fields.from;
    this.joins = fields.joins;
    this.where = fields.where;
    this.groupBy = fields.groupBy;
    this.select = fields.select;
    this.groupFilter = fields.groupFilter;
    this.order = fields.order;
    this.limit = fields.limit;
    this.per = fields.per;
    this.indexes = fields.indexes ?? [];
    Object.freeze(this);
  }

  #fields(): Fields {
    return { from: this.from, joins: this.joins, where: this.where, groupBy: this.groupBy, select: this.select, groupFilter: this.groupFilter, order: this.order, limit: this.limit, per: this.per, indexes: this.indexes };
  }

  /**
   * Orderings the view's list query serves from an index (a sorted set kept in the same atomic step
   * as the rows), each one or more of the view's fields, ascending or `desc(…)`; ties are broken by
   * the view key. Any other `orderBy` is sorted per request, only for views of a few rows
   * (`api.limits.sortInMemoryRows`).
   *
   * @example
   * view(revenueByCustomer).orderBy((r) => [desc(r.revenue)]).limit(10)
   *   .indexBy((r) => [desc(r.revenue)], (r) => [r.orders, desc(r.customerId)])
   */
  indexBy(...orderings: ((row: FieldColumns<F>) => readonly OrderBy[])[]): ViewDefinition<F> {
    const refs = outputRefs(viewFields(this)) as FieldColumns<F>;
    const added = orderings.map((o) => o(refs).map((t) => ('desc' in t ? t : { node: (t as Expr).node, desc: false })));
    return new ViewDefinition({ ...this.#fields(), indexes: [...this.indexes, ...added] });
  }

  /**
   * Keep only groups for which the predicate over the grouped row is true (SQL's HAVING).
   *
   * @example
   * view(orders).groupBy((o) => ({ customerId: o.customer_id })).select((o) => ({ revenue: sum(o.amount) }))
   *   .having((r) => gt(r.revenue, 1000))
   */
  having(predicate: (row: FieldColumns<F>) => Predicate): ViewDefinition<F> {
    const node = predicate(outputRefs(viewFields(this)) as FieldColumns<F>).node;
    return new ViewDefinition({ ...this.#fields(), groupFilter: andNodes(this.groupFilter, node) });
  }

  /** Order the view's rows, then keep the first n with `.limit(n)` (top-N). */
  orderBy(order: (row: FieldColumns<F>) => readonly OrderBy[]): Ordered<F> {
    const refs = outputRefs(viewFields(this)) as FieldColumns<F>;
    const terms = order(refs).map((t) => ('desc' in t ? t : { node: (t as Expr).node, desc: false }));
    return {
      limit: (n, options) =>
        new ViewDefinition<F>({ ...this.#fields(), order: terms, limit: n, per: options?.per ? options.per(refs).map((e) => e.node) : null }),
    };
  }
}

function toFields(record: Record<string, { node: ExprNode | AggregateNode }>): SelectField[] {
  return Object.entries(record).map(([name, e]) => ({ name, node: e?.node }));
}

type SourceFields<X> = X extends Aliased<infer T> ? SourceFields<T> : X extends TableDef<infer C> ? { -readonly [K in keyof C & string]: FieldSpec<SpecType<C[K]>, SpecNullable<C[K]>> } : X extends ViewDef<infer F> ? F : never;

/**
 * Start a view over a table, or over another view.
 *
 * @example
 * view(orders).where((o) => eq(o.status, 'paid')).select((o) => ({ id: o.id, amount: o.amount }))
 * view(revenueByCustomer).orderBy((r) => [desc(r.revenue)]).limit(10)
 */
export function view<X extends Source>(from: X): ViewBuilder<[ColumnsOfSource<X>], SourceFields<X>> {
  return new ViewBuilder({ from: sourceRef(from), joins: [], where: null });
}

// ---------------------------------------------------------------------------------------------
// Scalar functions

export type Literal = string | number | boolean;
type Operand = Expr | Literal;
type NullableOf<E> = E extends Expr<ColumnType, infer N> ? N : false;

export function literalNode(value: Literal, like: ColumnType | undefined): LiteralNode {
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
// mod, between, like, caseWhen, length, abs, round, cast, dateTrunc (semantics: functions.ts)

type TextType = 'text' | 'varchar' | 'bpchar';
/** Nullable when any part is: `true` or `false`, never `boolean`. */
type AnyTrue<N> = true extends N ? true : false;
type IntegerType = 'int2' | 'int4' | 'int8';
type TimeType = 'date' | 'timestamp' | 'timestamptz';

/**
 * The type PostgreSQL gives a number constant: int4 for integers, numeric otherwise. (At runtime an
 * integer beyond int4's range is int8, as in PostgreSQL; write such numbers as strings to have them
 * typed like the other operand.)
 */
type NumberLiteralType<V extends number> = number extends V ? 'int4' | 'numeric' : `${V}` extends `${bigint}` ? 'int4' : 'numeric';
/** A literal's own type; a string has none ('unknown') until it meets a typed operand, as in SQL. */
type LiteralType<V> = V extends boolean ? 'bool' : V extends number ? NumberLiteralType<V> : 'unknown';
type TypeOf<X> = X extends Expr<infer T, boolean> ? T : LiteralType<X>;
/** An operand's type: its own, or for a string literal, the other operand's. */
type MeetingType<X, Other> = TypeOf<X> extends 'unknown' ? (TypeOf<Other> extends 'unknown' ? 'text' : TypeOf<Other>) : TypeOf<X>;

function isExpr(x: unknown): x is Expr {
  return typeof x === 'object' && x !== null && 'node' in x;
}

/**
 * A literal as PostgreSQL reads it: a number is an int4, int8 or numeric constant whatever it meets;
 * a string is read as the type it meets (`like`), or text. A string that type cannot read is kept
 * with the problem, which validation reports.
 */
function typedLiteral(value: Literal, like?: ColumnType): LiteralNode {
  const node = (v: LiteralNode['value'], type: ColumnType, problem?: string): LiteralNode =>
    ({ kind: 'literal', value: v, type, nullable: false, ...(problem ? { problem } : {}) }) as LiteralNode;
  if (typeof value === 'boolean') return node(value, 'bool');
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= -2147483648 && value <= 2147483647) return node(value, 'int4');
    if (Number.isSafeInteger(value)) return node(String(value), 'int8');
    if (Number.isFinite(value)) return node(plainNumber(value), 'numeric');
    return node(String(value), 'float8', `Expected a finite number, but found ${value}`);
  }
  const type = like ?? 'text';
  const unreadable = `Expected a literal PostgreSQL reads as ${type}, but found '${value}'`;
  switch (type) {
    case 'int2':
      // Kept as text so that it prints as '7'::int2 (a bare 7 would be an int4 constant).
      return node(value, type, castFromText(value, type) === null ? unreadable : undefined);
    case 'int4':
    case 'int8':
    case 'numeric':
    case 'bool': {
      const v = castFromText(value, type);
      return v === null ? node(value, type, unreadable) : node(v, type);
    }
    case 'float4':
    case 'float8': {
      const v = castFromText(value, 'numeric');
      const n = v === null ? null : castValue('numeric', type, v);
      return typeof n === 'number' ? node(n, type) : node(value, type, unreadable);
    }
    case 'date':
    case 'timestamp':
    case 'timestamptz': {
      const v = canonicalTimeLiteral(value, type);
      return v === null
        ? node(value, type, `Expected a ${type} literal like '${type === 'date' ? '2024-01-02' : type === 'timestamp' ? '2024-01-02 03:04:05' : '2024-01-02 03:04:05+00'}', but found '${value}'`)
        : node(v, type);
    }
    default:
      return node(value, type);
  }
}

function operand(x: Expr | Literal, like?: ColumnType): ExprNode {
  return isExpr(x) ? x.node : typedLiteral(x, like);
}

type ModOperand = Expr<IntegerType | 'numeric'> | number | string;
type ModType<A, B> = A extends 'numeric'
  ? 'numeric'
  : B extends 'numeric'
    ? 'numeric'
    : A extends 'int8'
      ? 'int8'
      : B extends 'int8'
        ? 'int8'
        : A extends 'int2'
          ? B extends 'int2'
            ? 'int2'
            : 'int4'
          : 'int4';
/** NULL can come from a zero divisor, unless the divisor is a non-zero number literal. */
type ZeroDivisor<B> = B extends number ? (number extends B ? true : B extends 0 ? true : false) : true;

/**
 * a % b for integers and numerics: the remainder of the division truncated toward zero, so it
 * takes the dividend's sign (`mod(-7, 3)` is -1). The type is as for arithmetic (int2 % int2 stays
 * int2); numeric keeps the larger scale. NULL when b is 0 (printed `a % NULLIF(b, 0)`), so the
 * result is nullable unless b is a non-zero number literal.
 *
 * @example
 * view(orders).where((o) => eq(mod(o.id, 7), 0)).select((o) => ({ id: o.id }))
 */
export function mod<A extends ModOperand, B extends ModOperand>(
  a: A,
  b: B,
): Expr<ModType<MeetingType<A, B>, MeetingType<B, A>>, AnyTrue<NullableOf<A> | NullableOf<B> | ZeroDivisor<B>>> {
  const other = isExpr(b) ? b.node : typeof b === 'number' ? typedLiteral(b) : undefined;
  const left = operand(a, other?.type);
  const right = operand(b, left.type);
  const nullable = left.nullable || right.nullable || !(typeof b === 'number' && b !== 0);
  return call('mod', [left, right], modType(left.type, right.type), nullable);
}

/**
 * low <= x AND x <= high (`x BETWEEN low AND high`), with SQL's three-valued logic; text compares
 * by code point (`COLLATE "C"`). Literals take x's type.
 *
 * @example
 * view(orders).where((o) => between(o.created_at, '2024-01-01', '2024-02-01')).select((o) => ({ id: o.id }))
 */
export function between<X extends Expr, L extends Operand, H extends Operand>(
  x: X,
  low: L,
  high: H,
): Expr<'bool', AnyTrue<NullableOf<X> | NullableOf<L> | NullableOf<H> | FloatMeetsNumeric<X, L> | FloatMeetsNumeric<X, H>>> {
  const args = [x.node, operand(low, x.node.type), operand(high, x.node.type)];
  const [, lo, hi] = args;
  return call('between', args, 'bool', args.some((a) => a.nullable) || floatMeetsNumeric(x.node, lo!) || floatMeetsNumeric(x.node, hi!));
}

type FloatType = 'float4' | 'float8';
/** A float compared with a numeric column compares as float8, which fails beyond its range: nullable. */
type FloatMeetsNumeric<A, B> = [TypeOf<A>] extends [FloatType] ? IsNumericExpr<B> : [TypeOf<B>] extends [FloatType] ? IsNumericExpr<A> : false;

function floatMeetsNumeric(a: ExprNode, b: ExprNode): boolean {
  const isFloat = (n: ExprNode): boolean => n.type === 'float4' || n.type === 'float8';
  const isNumericColumn = (n: ExprNode): boolean => n.type === 'numeric' && n.kind !== 'literal';
  return (isFloat(a) && isNumericColumn(b)) || (isFloat(b) && isNumericColumn(a));
}

type LikeNullable<A, P> = AnyTrue<NullableOf<A> | NullableOf<P> | (P extends string ? false : true)>;

function likeCall(fn: 'like' | 'notLike', text: Expr | string, pattern: Expr | string): Expr<never, never> {
  const t = operand(text, 'text');
  const p = operand(pattern, 'text');
  // A pattern from a column may end in a lone escape character: PostgreSQL's error, our NULL.
  return call(fn, [t, p], 'bool', t.nullable || p.nullable || p.kind !== 'literal');
}

/**
 * text LIKE pattern: `%` matches any characters, `_` one character (a code point), `\` takes the
 * next character literally (`'100\%'`). Case-sensitive, as in PostgreSQL.
 *
 * @example
 * view(customers).where((c) => like(c.name, 'A%')).select((c) => ({ id: c.id, name: c.name }))
 */
export function like<A extends Expr<TextType> | string, P extends Expr<'text' | 'varchar'> | string>(
  text: A,
  pattern: P,
): Expr<'bool', LikeNullable<A, P>> {
  return likeCall('like', text, pattern);
}

/**
 * text NOT LIKE pattern (see `like`).
 *
 * @example
 * view(orders).where((o) => notLike(o.status, 'cancel%')).select((o) => ({ id: o.id }))
 */
export function notLike<A extends Expr<TextType> | string, P extends Expr<'text' | 'varchar'> | string>(
  text: A,
  pattern: P,
): Expr<'bool', LikeNullable<A, P>> {
  return likeCall('notLike', text, pattern);
}

type CaseValue = Expr | Literal;
type NumericOrUnknown = NumericType | 'unknown';
/** The widest of number types (PostgreSQL's common type of CASE branches). */
type WidestNumber<U> = 'float8' extends U
  ? 'float8'
  : 'float4' extends U
    ? 'float4'
    : 'numeric' extends U
      ? 'numeric'
      : 'int8' extends U
        ? 'int8'
        : 'int4' extends U
          ? 'int4'
          : 'int2';
/** The common type of two branch types, A taken first (text types: the first stays). */
type Meet<A, B> = A extends 'unknown'
  ? B
  : B extends 'unknown'
    ? A
    : [A] extends [B]
      ? A
      : [A | B] extends [NumericOrUnknown]
        ? WidestNumber<A | B>
        : [A | B] extends [TextType]
          ? A
          : never;
type Resolved<T> = T extends 'unknown' ? 'text' : T;
/** A numeric expression meeting a float branch converts to float8/float4, which fails beyond their range. */
type IsNumericExpr<V> = V extends Expr<'numeric', boolean> ? true : false;
type FloatOfNumeric<R, Numeric extends boolean> = R extends 'float4' | 'float8' ? Numeric : false;
/** What the next branch may be, after branches of type T. */
type BranchOf<T> = T extends 'unknown'
  ? CaseValue
  : T extends NumericType
    ? Expr<NumericType> | number | string
    : T extends TextType
      ? Expr<TextType> | string
      : Expr<T & ColumnType> | string;

/**
 * A CASE expression being built: `.when(condition, value)` adds a branch, `.otherwise(value)` ends
 * it with an ELSE. Without `.otherwise` it is already an expression, NULL when no condition holds.
 */
export class CaseExpr<T, BranchNullable extends boolean, NumericBranch extends boolean = false> implements Expr<Resolved<T> & ColumnType, true> {
  readonly node: ExprNode;
  declare readonly [phantom]?: { type: Resolved<T> & ColumnType; nullable: true };
  readonly #branches: readonly (readonly [ExprNode, CaseValue])[];

  constructor(branches: readonly (readonly [ExprNode, CaseValue])[]) {
    this.#branches = branches;
    this.node = caseNode(branches, []);
  }

  /** Another WHEN condition THEN value. */
  when<V extends BranchOf<T>>(
    condition: Predicate,
    value: V,
  ): CaseExpr<Meet<T, TypeOf<V>>, AnyTrue<BranchNullable | NullableOf<V>>, AnyTrue<NumericBranch | IsNumericExpr<V>>> {
    return new CaseExpr([...this.#branches, [condition.node, value]]);
  }

  /** ELSE value: the result when no condition holds. Non-null when every branch and this are non-null. */
  otherwise<V extends BranchOf<T>>(
    value: V,
  ): Expr<
    Resolved<Meet<TypeOf<V>, T>> & ColumnType,
    AnyTrue<BranchNullable | NullableOf<V> | FloatOfNumeric<Resolved<Meet<TypeOf<V>, T>>, AnyTrue<NumericBranch | IsNumericExpr<V>>>>
  > {
    return { node: caseNode(this.#branches, [value]) } as Expr<never, never>;
  }
}

function caseNode(branches: readonly (readonly [ExprNode, CaseValue])[], otherwise: readonly CaseValue[]): ExprNode {
  const values = [...branches.map(([, v]) => v), ...otherwise];
  // The common type of the typed branches, the ELSE first as PostgreSQL takes them; string
  // literals are read as that type (text if none).
  let type: ColumnType | null = null;
  for (const v of [...otherwise, ...branches.map(([, b]) => b)]) {
    if (typeof v === 'string') continue;
    const t = isExpr(v) ? v.node.type : typedLiteral(v).type;
    type = type === null ? t : (commonType(type, t) ?? type);
  }
  const nodes = values.map((v) => operand(v, type ?? 'text'));
  const args: ExprNode[] = [];
  branches.forEach(([condition], i) => args.push(condition, nodes[i]!));
  if (otherwise.length) args.push(nodes[nodes.length - 1]!);
  // A numeric column converted to a float result can be out of its range (PostgreSQL's error; NULL here).
  const mayFail = (n: ExprNode): boolean => n.kind !== 'literal' && n.type === 'numeric' && (type === 'float4' || type === 'float8');
  return call('case', args, type ?? 'text', otherwise.length === 0 || nodes.some((n) => n.nullable || mayFail(n))).node;
}

/**
 * CASE WHEN condition THEN value … [ELSE value] END. The result has the branches' common type
 * (numbers widen: int4 with numeric is numeric; among text, varchar and bpchar PostgreSQL keeps
 * the ELSE's, else the first WHEN's); string literals take it. It is nullable unless every branch
 * and an `.otherwise(…)` are non-null (and a numeric column among float branches makes it nullable:
 * beyond float8's range PostgreSQL raises an error, the view has NULL).
 *
 * @example
 * view(orders)
 *   .groupBy((o) => ({
 *     size: caseWhen(gt(o.amount, 1000), 'large').when(gt(o.amount, 100), 'medium').otherwise('small'),
 *   }))
 *   .select(() => ({ orders: count() }))
 */
export function caseWhen<V extends CaseValue>(condition: Predicate, value: V): CaseExpr<TypeOf<V>, AnyTrue<NullableOf<V>>, IsNumericExpr<V>> {
  return new CaseExpr([[condition.node, value]]);
}

/**
 * length(text): the number of characters (code points, not UTF-16 units); bpchar without its
 * trailing spaces, as in PostgreSQL.
 *
 * @example
 * view(customers).select((c) => ({ id: c.id, nameLength: length(c.name) }))
 */
export function length<N extends boolean>(text: Expr<TextType, N>): Expr<'int4', N> {
  return call('length', [text.node], 'int4', text.node.nullable);
}

/**
 * abs(x) in x's type (numeric keeps its scale). For integers the result is nullable: abs of the
 * smallest value (-2147483648 for int4) is out of range, an error in PostgreSQL, NULL here
 * (printed `abs(NULLIF(x, -2147483648))`).
 *
 * @example
 * view(orders).groupBy((o) => ({ customerId: o.customer_id })).select((o) => ({ volume: sum(abs(o.amount)) }))
 */
export function abs<T extends NumericType, N extends boolean>(value: Expr<T, N>): Expr<T, AnyTrue<N | (T extends IntegerType ? true : false)>> {
  const t = value.node.type;
  return call('abs', [value.node], t, value.node.nullable || t === 'int2' || t === 'int4' || t === 'int8');
}

/**
 * round(x): numeric rounds half away from zero (scale 0); floats round half to even (C's rint), and
 * so do integers, which PostgreSQL rounds as float8. round(x, digits) (numeric or integer x, digits
 * an integer literal, negative for tens, hundreds…): numeric with `max(digits, 0)` decimals.
 *
 * @example
 * view(orders).select((o) => ({ id: o.id, amount: round(o.amount, 1), whole: round(o.amount) }))
 */
export function round<T extends NumericType, N extends boolean>(value: Expr<T, N>): Expr<T extends 'numeric' ? 'numeric' : 'float8', N>;
export function round<T extends IntegerType | 'numeric', N extends boolean>(value: Expr<T, N>, digits: number): Expr<'numeric', N>;
export function round(value: Expr, digits?: number): Expr {
  const args = digits === undefined ? [value.node] : [value.node, typedLiteral(digits)];
  return call('round', args, roundType(value.node.type, digits !== undefined), value.node.nullable);
}

type Numbers = NumericType;
/** The source types each cast target accepts (functions.ts, CAST_SOURCES). */
interface CastSources {
  int2: Numbers | TextType;
  int4: Numbers | TextType | 'bool';
  int8: Numbers | TextType;
  numeric: Numbers | TextType;
  float8: Numbers;
  text: Numbers | TextType | 'bool' | 'uuid' | 'time' | TimeType;
  bool: 'bool' | 'int4' | TextType;
  date: TimeType | TextType;
  timestamp: TimeType;
  timestamptz: TimeType;
}
/** Whether a value may fail to convert (NULL here; an error in PostgreSQL). */
type CastCanFail<S, T> = [S] extends [T]
  ? false
  : S extends TextType
    ? T extends 'text'
      ? false
      : true
    : T extends 'int2'
      ? true
      : T extends 'int4'
        ? S extends 'int2' | 'bool'
          ? false
          : true
        : T extends 'int8'
          ? S extends 'int2' | 'int4'
            ? false
            : true
          : T extends 'numeric'
            ? S extends 'float4' | 'float8'
              ? true
              : false
            : T extends 'float8'
              ? S extends 'numeric'
                ? true
                : false
              : false;

/**
 * CAST(x AS type), with PostgreSQL's rules: numeric → integer rounds half away from zero, float →
 * integer half to even; float → numeric keeps 15 significant digits (float4: 6); anything → text
 * prints PostgreSQL's output (floats' shortest digits, timestamptz as '2024-01-02 03:04:05+00', bool
 * as 'true'); text → int2/int4/int8/numeric/bool/date reads it as PostgreSQL's input functions do.
 * A value the target cannot hold (out of range, text that does not read, a float NaN as numeric)
 * is NULL here where PostgreSQL raises an error, so such casts are nullable. Casts involving
 * time zones assume the session's TimeZone is UTC, as the printed SQL's oracle runs it.
 *
 * @example
 * view(orders).groupBy((o) => ({ day: cast(o.created_at, 'date') })).select((o) => ({ units: sum(cast(o.amount, 'int4')) }))
 */
export function cast<const T extends CastTarget, S extends CastSources[T], N extends boolean>(
  value: Expr<S, N>,
  type: T,
): Expr<T, AnyTrue<N | CastCanFail<S, T>>>;
export function cast<const T extends CastTarget>(value: string, type: T): Expr<T, CastCanFail<'text', T>>;
export function cast(value: Expr | string, type: CastTarget): Expr {
  const node = operand(value);
  return call('cast', [node], type, node.nullable || (castProblem(node.type, type) === null && castCanFail(node.type, type)));
}

/**
 * date_trunc(unit, x): the start of the microsecond … year that holds x ('week' starts on Monday,
 * as ISO). timestamptz truncates in UTC (printed `date_trunc('day', x, 'UTC')`, deterministic
 * whatever the session's TimeZone); a date truncates as a timestamp (`CAST(x AS timestamp)`).
 * Usable as a group key: tumbling windows.
 *
 * @example
 * view(orders).groupBy((o) => ({ day: dateTrunc('day', o.created_at) })).select((o) => ({ orders: count(), revenue: sum(o.amount) }))
 */
export function dateTrunc<T extends TimeType, N extends boolean>(
  unit: TruncUnit,
  value: Expr<T, N>,
): Expr<T extends 'date' ? 'timestamp' : T, N> {
  const t = value.node.type;
  return call('dateTrunc', [typedLiteral(unit), value.node], t === 'date' ? 'timestamp' : t, value.node.nullable);
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
/** count(DISTINCT e): how many distinct non-NULL values, exact under deletes. A BigInt. */
export function countDistinct(e: Expr): Aggregate<'int8', false> {
  return aggregate('countDistinct', e.node, 'int8', false);
}
/** bool_and(e): true when every non-NULL value is true; NULL when there is none. */
export function boolAnd(e: Expr<'bool'>): Aggregate<'bool', true> {
  return aggregate('boolAnd', e.node, 'bool', true);
}
/** bool_or(e): true when any non-NULL value is true; NULL when there is none. */
export function boolOr(e: Expr<'bool'>): Aggregate<'bool', true> {
  return aggregate('boolOr', e.node, 'bool', true);
}
