/**
 * Scan: a source table's changes as deltas — the start of every view's graph.
 *
 *   change c/r   +after                         under the row's primary key
 *   change u     −before +after                 (nothing when only columns the view does not read changed)
 *   change d     −before
 *   change t     clear: every row left
 *
 * Rows carry only the columns the view reads, named `<alias>.<column>`. An unchanged TOASTed column
 * (not sent) is taken from the old row. When the source sent no usable old row (REPLICA IDENTITY
 * DEFAULT), the retraction is `row: null`: a rows view's output resolves it by key; a stateful
 * operator refuses it (PlanError), which is why those tables need REPLICA IDENTITY FULL.
 */
import { UNAVAILABLE, type Change, type ChangeRow } from '../../ingest/change.ts';
import type { Value } from '../../core/values.ts';
import type { TableDef } from '../define.ts';
import { encodeRowKey } from '../../core/encoding.ts';
import { PlanError } from '../errors.ts';
import { projectImage } from './rows.ts';
import type { Delta, DeltaBatch, Operator, Row } from './types.ts';
import { EMPTY } from './types.ts';

/**
 * What the scans of one batch share: each row image's encoded key (an image belongs to one table)
 * and its projections on a set of columns (by signature). Made per batch and dropped with it: a
 * WeakMap keyed by every image cost the garbage collector more than the memo saved.
 */
export class ScanMemo {
  readonly imageKeys = new Map<ChangeRow, string>();
  readonly projections = new Map<ChangeRow, Map<string, Row | 'unknown'>>();
}

export interface ScanSpec {
  readonly id: string;
  readonly table: TableDef;
  readonly alias: string;
  /** Columns the view reads (the primary key among them or not). */
  readonly columns: readonly string[];
  /** The view it belongs to (for messages). */
  readonly view: string;
}

export class Scan implements Operator {
  readonly id: string;
  readonly inputs: readonly Operator[] = [];
  readonly spec: ScanSpec;
  private readonly keyTypes;
  /** The columns the view reads, named `<alias>.<column>` ('unknown' when the image lacks one). */
  private readonly projectImage: (image: ChangeRow, absent: typeof UNAVAILABLE) => Row | 'unknown';
  private readonly signature: string;

  constructor(spec: ScanSpec) {
    this.id = spec.id;
    this.spec = spec;
    this.keyTypes = spec.table.key.map((k) => spec.table.columns[k]!.type);
    const names = spec.columns.map((c) => `${spec.alias}.${c}`);
    this.signature = names.join('\x00');
    this.projectImage = projectImage(spec.columns.map((c, i) => [c, names[i]!]));
  }

  /** The deltas of this table's changes in a batch (in source order). */
  fromChanges(changes: readonly Change[], memo = new ScanMemo()): DeltaBatch {
    const { table } = this.spec;
    let clear = false;
    let deltas: Delta[] = [];
    for (const change of changes) {
      if (change.table !== table.name) continue;
      if (change.op === 't') {
        clear = true;
        deltas = [];
        continue;
      }
      // No old row sent (REPLICA IDENTITY DEFAULT, key unchanged): the row under its key left, content unknown.
      const oldImage = change.before ?? (change.op === 'd' || change.op === 'u' ? change.key : null);
      let after: ChangeRow | null;
      try {
        after = change.op === 'd' ? null : this.complete(change);
      } catch (error) {
        if (error instanceof PlanError) error.change = change;
        throw error;
      }
      const before = oldImage ? this.project(oldImage, memo) : null;
      const oldKey = oldImage ? this.keyOf(oldImage, memo) : null;
      // complete() made every column the view reads present in the after image.
      const newRow = after ? (this.project(after, memo) as Row) : null;
      const newKey = after ? this.keyOf(after, memo) : null;
      if (before !== null && newRow !== null && before !== 'unknown' && oldKey === newKey && sameValues(before, newRow)) continue;
      if (oldKey !== null && change.op !== 'c' && change.op !== 'r') deltas.push({ key: oldKey, row: before === 'unknown' ? null : before, weight: -1 });
      if (newRow !== null) deltas.push({ key: newKey!, row: newRow, weight: 1 });
    }
    return clear || deltas.length > 0 ? { clear, deltas } : EMPTY;
  }

  /** The after image with unchanged TOASTed columns filled in from the before image. */
  private complete(change: Change): ChangeRow {
    const after = change.after!;
    let filled: Record<string, Value | typeof UNAVAILABLE> | null = null;
    for (const column of this.spec.columns) {
      const v = after[column];
      if (v === undefined) {
        throw new PlanError(
          `view ${this.spec.view}: the change to ${change.table} has no column '${column}', which the view reads (dropped from the source table, or not captured by the connector)`,
        );
      }
      if (v !== UNAVAILABLE) continue;
      const known = change.before?.[column];
      if (known === undefined || known === UNAVAILABLE) {
        throw new PlanError(
          `view ${this.spec.view}: column '${column}' of ${change.table} was not sent (unchanged TOAST value) and its old value is unknown; set REPLICA IDENTITY FULL on ${change.table}`,
        );
      }
      filled ??= { ...after };
      filled[column] = known;
    }
    return filled ?? after;
  }

  /** The columns the view reads, or 'unknown' when the image lacks some (a key-only old row). */
  private project(image: ChangeRow, memo: ScanMemo): Row | 'unknown' {
    // Views reading the same columns under the same alias share the projected row (rows are never changed).
    let shared = memo.projections.get(image);
    if (shared === undefined) memo.projections.set(image, (shared = new Map()));
    const known = shared.get(this.signature);
    if (known !== undefined) return known;
    const row = this.projectNew(image);
    shared.set(this.signature, row);
    return row;
  }

  private projectNew(image: ChangeRow): Row | 'unknown' {
    return this.projectImage(image, UNAVAILABLE);
  }

  private keyOf(image: ChangeRow, memo: ScanMemo): string {
    // Every view reading the table scans the same images: their keys are encoded once.
    const known = memo.imageKeys.get(image);
    if (known !== undefined) return known;
    const { key } = this.spec.table;
    const encoded = encodeRowKey(
      this.keyTypes,
      key.map((k) => {
        const v = image[k];
        return v === undefined || v === UNAVAILABLE ? null : v;
      }),
    );
    memo.imageKeys.set(image, encoded);
    return encoded;
  }

  step(): DeltaBatch {
    throw new Error('a scan is fed by fromChanges');
  }
}

function sameValues(a: Row, b: Row): boolean {
  for (const k in a) if (a[k] !== b[k]) return false;
  return true;
}
