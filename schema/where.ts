/**
 * `where` of a list query or a subscription, compiled to a predicate over a view's rows with SQL's
 * semantics: values compare exactly as PostgreSQL compares them (decimals digit by digit, text by
 * code point as COLLATE "C", timestamps to the microsecond: core/encoding.ts compareValues), and a
 * comparison with NULL is never true (`isNull` is how NULL matches). Without NOT, three-valued
 * logic needs no third value: unknown and false are both "no row".
 *
 *   { revenue: { gte: "100.5" }, or: [{ country: { eq: "SE" } }, { country: { isNull: true } }] }
 *     → revenue >= 100.5 AND (country = 'SE' OR country IS NULL)
 */
import { compareValues } from '../core/encoding.ts';
import type { ColumnType, Value } from '../core/values.ts';
import type { CompiledView } from '../views/registry.ts';
import type { ViewRow } from '../views/store/read.ts';
import { PublicError } from './errors.ts';

export type RowPredicate = (row: ViewRow) => boolean;

export const COMPARISONS = ['eq', 'ne', 'lt', 'lte', 'gt', 'gte', 'in', 'isNull'] as const;
type Op = (typeof COMPARISONS)[number];

/** Comparisons of a where at most (its size bounds the work per row and per change). */
export const MAX_WHERE_TERMS = 100;
/** Values of one `in` at most. */
export const MAX_IN_VALUES = 1000;

export interface CompiledWhere {
  readonly test: RowPredicate;
  /** Equal for equal wheres (subscribers with equal filters share their evaluation). */
  readonly key: string;
}

const bad = (message: string): PublicError => new PublicError(message, 'BAD_USER_INPUT');

/** A value from GraphQL input as a row of this type stores it (and so compares it). */
function asStored(type: ColumnType, value: unknown, at: string): Value {
  if (value === null || value === undefined) throw bad(`Expected a value at ${at}, but found null (match NULL with isNull: true)`);
  if (type === 'numeric' && value === 'NaN') throw bad(`Expected a number at ${at}, but found NaN`);
  if (type === 'uuid' && typeof value === 'string') return value.toLowerCase();
  return value as Value;
}

/**
 * Compile a where input (as graphql-js parsed it) against the fields a caller may read; null when
 * it is absent. Anything a client got wrong is a BAD_USER_INPUT naming the place.
 */
export function compileWhere(view: CompiledView, input: unknown, readable: ReadonlySet<string> | null): CompiledWhere | null {
  if (input === null || input === undefined) return null;
  let terms = 0;
  const compile = (node: Record<string, unknown>, at: string): { test: RowPredicate; key: unknown } => {
    const tests: RowPredicate[] = [];
    const keys: unknown[] = [];
    for (const name of Object.keys(node).sort()) {
      const value = node[name];
      if (name === 'and' || name === 'or') {
        if (!Array.isArray(value)) throw bad(`Expected a list at ${at}.${name}, but found ${value === null ? 'null' : typeof value}`);
        const parts = value.map((v, i) => compile(v as Record<string, unknown>, `${at}.${name}[${i}]`));
        const ps = parts.map((p) => p.test);
        tests.push(name === 'and' ? (row) => ps.every((p) => p(row)) : (row) => ps.some((p) => p(row)));
        keys.push([name, parts.map((p) => p.key)]);
        continue;
      }
      const field = view.fields.find((f) => f.name === name);
      if (!field || (readable !== null && !readable.has(name))) throw bad(`Expected a field of ${view.name} at ${at}, but found '${name}'`);
      if (value === null || typeof value !== 'object') throw bad(`Expected comparisons at ${at}.${name} (eq, ne, lt, lte, gt, gte, in, isNull), but found null`);
      for (const op of Object.keys(value).sort() as Op[]) {
        if (++terms > MAX_WHERE_TERMS) throw bad(`Expected at most ${MAX_WHERE_TERMS} comparisons in where, but found more`);
        const operand = (value as Record<string, unknown>)[op];
        const place = `${at}.${name}.${op}`;
        const test = comparison(field.name, field.type, op, operand, place);
        tests.push(test);
        keys.push([name, op, op === 'in' ? (operand as unknown[]).map((v) => asStored(field.type, v, place)) : op === 'isNull' ? operand : asStored(field.type, operand, place)]);
      }
    }
    return { test: tests.length === 1 ? tests[0]! : (row) => tests.every((t) => t(row)), key: keys };
  };
  if (typeof input !== 'object') throw bad('Expected where to be an object');
  const { test, key } = compile(input as Record<string, unknown>, 'where');
  return { test, key: JSON.stringify(key) };
}

function comparison(field: string, type: ColumnType, op: Op, operand: unknown, at: string): RowPredicate {
  if (op === 'isNull') {
    if (typeof operand !== 'boolean') throw bad(`Expected true or false at ${at}, but found null`);
    return operand ? (row) => row[field] === null || row[field] === undefined : (row) => row[field] !== null && row[field] !== undefined;
  }
  if (op === 'in') {
    if (!Array.isArray(operand)) throw bad(`Expected a list at ${at}, but found null`);
    if (operand.length > MAX_IN_VALUES) throw bad(`Expected at most ${MAX_IN_VALUES} values at ${at}, but found ${operand.length}`);
    const values = operand.map((v, i) => asStored(type, v, `${at}[${i}]`));
    return (row) => {
      const x = row[field];
      return x !== null && x !== undefined && values.some((v) => compareValues(type, x, v) === 0);
    };
  }
  const v = asStored(type, operand, at);
  const holds = ORDER_TESTS[op];
  return (row) => {
    const x = row[field];
    return x !== null && x !== undefined && holds(compareValues(type, x, v));
  };
}

const ORDER_TESTS: Record<Exclude<Op, 'in' | 'isNull'>, (c: number) => boolean> = {
  eq: (c) => c === 0,
  ne: (c) => c !== 0,
  lt: (c) => c < 0,
  lte: (c) => c <= 0,
  gt: (c) => c > 0,
  gte: (c) => c >= 0,
};
