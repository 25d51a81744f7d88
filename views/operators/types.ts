/**
 * What flows between operators: deltas as data (DESIGN.md §5, db-ivm's MultiSet, DBSP's Z-sets).
 *
 *   Delta      a row entering (+1) or leaving (−1) an operator's output, under the row's key (unique
 *              in that output: a table's primary key, a group, the pair of joined keys). An update
 *              is −old +new. `row: null` on a −1: a row left whose content is unknown (a source
 *              without old rows, REPLICA IDENTITY DEFAULT); only the view's output can resolve it.
 *   DeltaBatch the deltas of one batch, in source order, after an optional `clear` (a TRUNCATE:
 *              every row of this output left before the deltas).
 *
 * Rows are plain objects. A table's rows are keyed `<alias>.<column>` (several tables meet in a
 * join); after a projection or a grouping, by the output field names.
 */
import type { Value } from '../../core/values.ts';
import type { Read, StateStore } from '../store/state-store.ts';

export type Row = Record<string, Value>;

export interface Delta {
  readonly key: string;
  readonly row: Row | null;
  readonly weight: 1 | -1;
}

export interface DeltaBatch {
  readonly clear: boolean;
  readonly deltas: readonly Delta[];
}

export const EMPTY: DeltaBatch = Object.freeze({ clear: false, deltas: Object.freeze([]) as readonly Delta[] });

/**
 * A running operator: a pure step from input deltas and the state it reads to output deltas and
 * state writes. `needs` says which state the step will read (asked again until it answers none, so
 * a second read may depend on the first); `step` then reads only what is loaded.
 */
export interface Operator {
  readonly id: string;
  readonly inputs: readonly Operator[];
  needs?(inputs: readonly DeltaBatch[], store: StateStore): Read[];
  step(inputs: readonly DeltaBatch[], store: StateStore): DeltaBatch;
  /** Every Redis key pattern of its state (deleted with the deployment; sizes for status). */
  readonly statePattern?: string;
}

/** A batch's net effect on one key. */
export interface KeyChange {
  /** The row before the batch: a Row, null (absent), or undefined (present, content unknown). */
  before: Row | null | undefined;
  /** The row after the batch, or null. */
  after: Row | null;
}

const UNKNOWN = '\u0000unknown';

/**
 * Per key, the row before the batch and the row after it: a key's deltas are netted as a multiset
 * (−old +new, −new +newer, … in any order: an operator may emit a key's + before its −, e.g. a
 * row moving between top-N partitions), equal rows with opposite weights cancelling.
 */
export function netChanges(batch: DeltaBatch): Map<string, KeyChange> {
  const byKey = new Map<string, Delta | Delta[]>();
  for (const d of batch.deltas) {
    const seen = byKey.get(d.key);
    if (seen === undefined) byKey.set(d.key, d);
    else if (Array.isArray(seen)) seen.push(d);
    else byKey.set(d.key, [seen, d]);
  }
  const changes = new Map<string, KeyChange>();
  for (const [key, entry] of byKey) {
    if (!Array.isArray(entry)) {
      changes.set(key, entry.weight === 1 ? { before: null, after: entry.row } : { before: entry.row ?? undefined, after: null });
      continue;
    }
    // The common case, an update (−old +new, either order): no netting needed. Equal rows come out
    // as before = after, which every consumer treats as no change.
    if (entry.length === 2 && entry[0]!.weight !== entry[1]!.weight) {
      const [minus, plus] = entry[0]!.weight === -1 ? entry : [entry[1]!, entry[0]!];
      changes.set(key, { before: minus!.row ?? undefined, after: plus!.row });
      continue;
    }
    const net = new Map<string, { row: Row | null; n: number }>();
    for (const d of entry) {
      const id = d.row === null ? UNKNOWN : JSON.stringify(d.row);
      const e = net.get(id);
      if (e) e.n += d.weight;
      else net.set(id, { row: d.row, n: d.weight });
    }
    const change: KeyChange = { before: null, after: null };
    for (const { row, n } of net.values()) {
      if (n < 0) change.before = row ?? undefined;
      else if (n > 0) change.after = row;
    }
    changes.set(key, change);
  }
  return changes;
}
