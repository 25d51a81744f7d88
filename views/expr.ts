/**
 * Expressions as data. Every column reference, literal, operator and aggregate a view uses is a
 * node the planner can read (which columns a view needs, which are keys), evaluate (per change,
 * with SQL's NULL semantics) and print as SQL (the oracle and the `sql` command).
 *
 * Each node knows its result type (a `ColumnType`) and whether it can be NULL; the TypeScript
 * wrappers in define.ts carry the same facts as phantom types, so one declaration drives the
 * runtime checks, the inferred row type and the GraphQL schema.
 */
import { isFloatType, type ColumnType, type Value } from '../core/values.ts';

export { isFloatType, isIntegerType, isNumericType, isTextType } from '../core/values.ts';

export type ComparisonFn = 'eq' | 'ne' | 'lt' | 'lte' | 'gt' | 'gte';
export type ArithmeticFn = 'add' | 'sub' | 'mul' | 'div';
export type ScalarFn =
  | ComparisonFn
  | ArithmeticFn
  | 'and'
  | 'or'
  | 'not'
  | 'isNull'
  | 'isNotNull'
  | 'coalesce'
  | 'lower'
  | 'upper'
  | 'concat'
  | 'in'
  | 'mod'
  | 'between'
  | 'like'
  | 'notLike'
  /** CASE: args are condition, value, condition, value, …, and the ELSE value when their count is odd. */
  | 'case'
  | 'length'
  | 'abs'
  /** round(x) or round(x, digits) with digits an integer literal. */
  | 'round'
  /** CAST(x AS <the node's type>). */
  | 'cast'
  /** date_trunc: args are the unit (a text literal) and the date/time. */
  | 'dateTrunc';
export type AggregateFn = 'count' | 'sum' | 'avg' | 'min' | 'max' | 'countDistinct' | 'boolAnd' | 'boolOr';

interface Typed {
  readonly type: ColumnType;
  readonly nullable: boolean;
}

export interface ColumnNode extends Typed {
  readonly kind: 'column';
  /** The table (or 'view <alias>') the column comes from, for messages; '' for a view's own output field. */
  readonly table: string;
  readonly column: string;
  /** The alias of the view's source it comes from; '$' for the view's own output (having, orderBy). */
  readonly source?: string;
}

export interface LiteralNode extends Typed {
  readonly kind: 'literal';
  readonly value: Value;
}

export interface CallNode extends Typed {
  readonly kind: 'call';
  readonly fn: ScalarFn;
  readonly args: readonly ExprNode[];
}

export interface AggregateNode extends Typed {
  readonly kind: 'aggregate';
  readonly fn: AggregateFn;
  /** null for count(*). */
  readonly arg: ExprNode | null;
}

export type ExprNode = ColumnNode | LiteralNode | CallNode;
export type AnyNode = ExprNode | AggregateNode;

/** PostgreSQL's result type for `a op b` on numbers (implicit casts: int → numeric → float8). */
export function arithmeticType(a: ColumnType, b: ColumnType): ColumnType {
  if (isFloatType(a) || isFloatType(b)) return 'float8';
  if (a === 'numeric' || b === 'numeric') return 'numeric';
  if (a === 'int8' || b === 'int8') return 'int8';
  return 'int4';
}

/** PostgreSQL's result type of sum(x). */
export function sumType(t: ColumnType): ColumnType {
  if (t === 'int2' || t === 'int4') return 'int8';
  if (isFloatType(t)) return 'float8';
  return 'numeric';
}

/** PostgreSQL's result type of avg(x). */
export function avgType(t: ColumnType): ColumnType {
  return isFloatType(t) ? 'float8' : 'numeric';
}

/** Columns an expression reads, as `table.column`. */
export function columnsOf(node: AnyNode | null, into = new Set<string>()): Set<string> {
  if (!node) return into;
  switch (node.kind) {
    case 'column':
      into.add(node.column);
      break;
    case 'call':
      for (const arg of node.args) columnsOf(arg, into);
      break;
    case 'aggregate':
      columnsOf(node.arg, into);
      break;
    case 'literal':
      break;
  }
  return into;
}
