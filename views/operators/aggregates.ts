/**
 * Aggregate functions as accumulators: what a group keeps, how one input row changes it, and the
 * value it shows. Aggregates of one expression share an accumulator (sum, avg and count of x read
 * one exact sum; min and max of x one candidate multiset).
 *
 *   accumulator  state in the group (JSON)            beside it in Redis
 *   count        non-null count                        —
 *   sum          [unscaled, scale, count, {scale: n}]  —   exact; shown with the largest scale of
 *                                                          the values it sums (PostgreSQL's rule)
 *   floatSum     [sum, count]                          —   float8 (drifts under retraction, as floats do)
 *   candidates   [min member, max member]              a lex-ordered set of distinct values and a
 *                                                          hash of extra copies: deleting the extreme
 *                                                          finds the next exactly
 *   distinct     distinct count                        a hash value → copies; the count moves on 0↔1
 *   bool         [trues, falses]                       —   bool_and / bool_or
 */
import { divideDecimal, formatDecimal } from '../../core/decimal.ts';
import type { ColumnType, Value } from '../../core/values.ts';
import { candidateMember, candidateValue, orderKey } from '../../core/encoding.ts';
import { PlanError } from '../errors.ts';
import type { AggregateFn, ExprNode } from '../expr.ts';

export type Accumulator =
  | { readonly kind: 'count'; readonly arg: ExprNode }
  | { readonly kind: 'sum'; readonly arg: ExprNode }
  | { readonly kind: 'floatSum'; readonly arg: ExprNode }
  | { readonly kind: 'candidates'; readonly arg: ExprNode; readonly min: boolean; readonly max: boolean }
  | { readonly kind: 'distinct'; readonly arg: ExprNode }
  | { readonly kind: 'bool'; readonly arg: ExprNode };

export interface CompiledAggregate {
  readonly name: string;
  readonly fn: AggregateFn;
  readonly arg: ExprNode | null;
  readonly type: ColumnType;
  /** Index into the accumulators; null for count(*), which is the group's row count. */
  readonly accumulator: number | null;
}

export type AccState = number | [string, number, number, Record<string, number>] | [number, number] | [string | null, string | null];

/** The change one batch makes to an accumulator of one group. */
export type AccDelta =
  | { kind: 'count'; count: number }
  | { kind: 'sum'; unscaled: bigint; scale: number; count: number; scales: Map<number, number> }
  | { kind: 'floatSum'; sum: number; count: number }
  /** Members (order-key encoded values) entering (+) or leaving (−) the multiset. */
  | { kind: 'candidates'; members: Map<string, number> }
  | { kind: 'distinct'; members: Map<string, number> }
  | { kind: 'bool'; trues: number; falses: number };

export function emptyDelta(acc: Accumulator): AccDelta {
  switch (acc.kind) {
    case 'count':
      return { kind: 'count', count: 0 };
    case 'sum':
      return { kind: 'sum', unscaled: 0n, scale: 0, count: 0, scales: new Map() };
    case 'floatSum':
      return { kind: 'floatSum', sum: 0, count: 0 };
    case 'candidates':
      return { kind: 'candidates', members: new Map() };
    case 'distinct':
      return { kind: 'distinct', members: new Map() };
    case 'bool':
      return { kind: 'bool', trues: 0, falses: 0 };
  }
}

export function emptyState(acc: Accumulator): AccState {
  switch (acc.kind) {
    case 'count':
    case 'distinct':
      return 0;
    case 'sum':
      return ['0', 0, 0, {}];
    case 'floatSum':
    case 'bool':
      return [0, 0];
    case 'candidates':
      return [null, null];
  }
}

/** Add one (non-null) value, with weight ±1, to a group's delta. */
export function accumulate(acc: Accumulator, delta: AccDelta, value: Value, weight: 1 | -1): void {
  switch (delta.kind) {
    case 'count':
      delta.count += weight;
      return;
    case 'floatSum':
      delta.sum += weight * Number(value);
      delta.count += weight;
      return;
    case 'sum': {
      const scale = addExact(delta, value, weight);
      delta.count += weight;
      delta.scales.set(scale, (delta.scales.get(scale) ?? 0) + weight);
      return;
    }
    case 'candidates':
    case 'distinct': {
      // count(DISTINCT) counts values equal under SQL's equality once, and numeric 1.0 = 1.00: its
      // member is the order key alone (a candidate keeps the text too, to show it as written).
      // Only numeric has equal values written differently; other types keep their members.
      const member = delta.kind === 'distinct' && acc.arg.type === 'numeric' ? orderKey('numeric', value) : candidateMember(acc.arg.type, value);
      delta.members.set(member, (delta.members.get(member) ?? 0) + weight);
      return;
    }
    case 'bool':
      if (value === true) delta.trues += weight;
      else delta.falses += weight;
      return;
  }
}

/** Whether a delta changes nothing. */
export function isEmptyDelta(delta: AccDelta): boolean {
  switch (delta.kind) {
    case 'count':
      return delta.count === 0;
    case 'sum':
      return delta.count === 0 && delta.unscaled === 0n && [...delta.scales.values()].every((n) => n === 0);
    case 'floatSum':
      return delta.count === 0 && delta.sum === 0;
    case 'candidates':
    case 'distinct':
      return [...delta.members.values()].every((n) => n === 0);
    case 'bool':
      return delta.trues === 0 && delta.falses === 0;
  }
}

/** The arithmetic part of a new state (candidates and distinct are resolved by the reduce operator, which reads their sets). */
export function applyArithmetic(state: AccState, delta: AccDelta): AccState {
  switch (delta.kind) {
    case 'count':
      return (state as number) + delta.count;
    case 'floatSum': {
      const [sum, count] = state as [number, number];
      const c = count + delta.count;
      return [c === 0 ? 0 : sum + delta.sum, c];
    }
    case 'sum': {
      const [u, s, c, scales] = state as [string, number, number, Record<string, number>];
      const count = c + delta.count;
      let unscaled = BigInt(u);
      let scale = s;
      let d = delta.unscaled;
      if (delta.scale > scale) {
        unscaled *= 10n ** BigInt(delta.scale - scale);
        scale = delta.scale;
      } else if (delta.scale < scale) d *= 10n ** BigInt(scale - delta.scale);
      unscaled += d;
      const next: Record<string, number> = { ...scales };
      for (const [sc, n] of delta.scales) {
        const left = (next[sc] ?? 0) + n;
        if (left === 0) delete next[sc];
        else next[sc] = left;
      }
      return count === 0 ? ['0', 0, 0, {}] : [unscaled.toString(), scale, count, next];
    }
    case 'bool': {
      const [t, f] = state as [number, number];
      return [t + delta.trues, f + delta.falses];
    }
    default:
      return state;
  }
}

/** The value an aggregate shows, from its accumulator's state (`rows`: the group's row count). */
export function finalize(aggregate: CompiledAggregate, acc: Accumulator | null, state: AccState | null, rows: number): Value {
  if (acc === null || state === null) return String(rows); // count(*)
  switch (acc.kind) {
    case 'count':
    case 'distinct':
      return String(state as number);
    case 'sum': {
      const [unscaled, scale, count, scales] = state as [string, number, number, Record<string, number>];
      if (aggregate.fn === 'count') return String(count);
      if (count === 0) return null;
      const sum = displaySum(unscaled, scale, scales);
      return aggregate.fn === 'sum' ? sum : divideDecimal(sum, String(count));
    }
    case 'floatSum': {
      const [sum, count] = state as [number, number];
      if (aggregate.fn === 'count') return String(count);
      if (count === 0) return null;
      return aggregate.fn === 'sum' ? sum : sum / count;
    }
    case 'candidates': {
      const [lowest, highest] = state as [string | null, string | null];
      const member = aggregate.fn === 'min' ? lowest : highest;
      return member === null ? null : candidateValue(acc.arg.type, member);
    }
    case 'bool': {
      const [t, f] = state as [number, number];
      if (t + f === 0) return null;
      return aggregate.fn === 'boolAnd' ? f === 0 : t > 0;
    }
  }
}

/** A numeric sum shown as PostgreSQL shows it: with the largest scale among the values it sums. */
function displaySum(unscaled: string, scale: number, scales: Record<string, number>): string {
  const display = Math.max(0, ...Object.keys(scales).map(Number));
  const u = BigInt(unscaled);
  return formatDecimal(scale <= display ? { unscaled: u, scale } : { unscaled: u / 10n ** BigInt(scale - display), scale: display });
}

/** delta += weight × value, exactly; returns the value's scale. */
function addExact(delta: { unscaled: bigint; scale: number }, value: Value, weight: 1 | -1): number {
  let unscaled: bigint;
  let scale = 0;
  if (typeof value === 'number') unscaled = BigInt(value);
  else {
    const text = String(value);
    const dot = text.indexOf('.');
    if (dot < 0 && !/[eE]/.test(text)) unscaled = BigInt(text);
    else {
      const m = /^(-?)(\d*)\.(\d*)$/.exec(text);
      if (!m) throw new PlanError(`Expected a decimal number, but found '${text}'`);
      unscaled = BigInt(`${m[1]}${m[2] || '0'}${m[3]}`);
      scale = m[3]!.length;
    }
  }
  if (scale > delta.scale) {
    delta.unscaled *= 10n ** BigInt(scale - delta.scale);
    delta.scale = scale;
  } else if (scale < delta.scale) {
    unscaled *= 10n ** BigInt(delta.scale - scale);
  }
  delta.unscaled += weight === 1 ? unscaled : -unscaled;
  return scale;
}
