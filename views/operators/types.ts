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
import type { Value } from '../../ingest/values.ts';
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

/** Fold a batch's deltas per key into the row before the batch and the row after it. */
export interface KeyChange {
  /** The row before the batch: a Row, null (absent), or undefined (present, content unknown). */
  before: Row | null | undefined;
  /** The row after the batch, or null. */
  after: Row | null;
}

/**
 * Per key, the first row that left and the last row that entered: the net effect of a batch whose
 * deltas of one key follow each other (−old +new, −new +newer, …), as every operator's output does.
 */
export function netChanges(batch: DeltaBatch): Map<string, KeyChange> {
  const changes = new Map<string, KeyChange>();
  for (const d of batch.deltas) {
    let c = changes.get(d.key);
    if (!c) {
      c = { before: null, after: null };
      changes.set(d.key, c);
      if (d.weight === -1) c.before = d.row === null ? undefined : d.row;
      else if (!batch.clear) c.before = null; // entered first: it was not there (unless cleared: absent anyway)
    }
    if (d.weight === 1) c.after = d.row;
    else c.after = null;
  }
  return changes;
}
