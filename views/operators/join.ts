/**
 * Join: inner and left equi-joins of two inputs (a chain of them joins more).
 *
 *   state   <base>:L:<jk>   HASH left row key → left row: the JSON array of the columns the view
 *                           reads, in the left rows' field order (names are not repeated per row);
 *                           a left join also keeps its left rows with a NULL in the join key, under
 *                           jk '\x02'
 *           <base>:R:<jk>   HASH right row key → right row (the same, in the right rows' order)
 *           <base>:Rn       HASH join key → its number of right rows (left joins: when to add or
 *                           retract a left row's NULL-extended row, without reading the right rows)
 *   output  joined rows, keyed <left key>\x03<right key> (\x04 for the missing right row of a left join)
 *
 * A batch's deltas are applied in two passes, so that nothing is joined twice or missed, and no
 * temporary copy of either side is needed (DBSP's Δ(A⋈B) = ΔA⋈B + A'⋈ΔB, with A' = A + ΔA):
 *
 *   1. each left delta joins the right rows before the batch, then updates the left index
 *   2. each right delta joins the left rows after pass 1, then updates the right index
 *
 * Left join: a left row with no right match is output once with NULLs for the right columns; when
 * its join key gains its first right row that NULL row leaves, and when it loses its last one the
 * NULL row comes back — decided per right delta against the right rows at that moment, so a batch
 * that adds and removes never emits a row twice. A NULL in a join key matches nothing (SQL).
 *
 * Reads: a left delta reads the right rows of its join key, a right delta the left rows (and, for a
 * left join, the right rows' count) — cached after the first time; a bucket longer than
 * `fanoutChunk` only has its length read. Writing a row into its own
 * side's index reads nothing.
 *
 * Fan-out: a join key holding more than `fanoutChunk` rows on the other side is not read whole (its
 * length comes with the read instead). A delta meeting such a bucket is *deferred*: the step joins
 * it only with the rows of that key the batch touches, and hands a FanoutJob out (takeDeferred) for
 * the rest, which the engine joins after the batch, a chunk of the bucket per step
 * (plan/fanout.ts), with the views downstream busy meanwhile. The
 * batch's output Δ = ΔL ⋈ R + L' ⋈ ΔR is split by the rows a pair is made of, so that every output
 * key changes in exactly one step (no row is ever added twice, or retracted before it was added):
 *
 *   - a deferred left delta d (its right bucket is long): the step joins it with the right rows
 *     of its key the batch touches, as they were before it; the job joins it with the other right
 *     rows (untouched, so the same after the batch), skipping the touched keys
 *   - a deferred right delta r (its left bucket is long): the step pairs it with the left rows of
 *     its key the batch touches, as they are after pass 1; the job pairs it with the other left
 *     rows, with the right-row count r saw (left joins: the NULL-extended rows)
 *
 * Untouched rows keep their key, so a job's pairs are made of one touched and one untouched row
 * that no other step or job pairs; a job's chunk carries all of its deltas for a bucket row.
 */
import { operatorStateBase } from '../store/keys.ts';
import { encodeRowKey } from '../../core/encoding.ts';
import { PlanError } from '../errors.ts';
import type { ExprNode } from '../expr.ts';
import { evaluate } from '../plan/evaluate.ts';
import type { Read, StateStore } from '../store/state-store.ts';
import type { ColumnType, Value } from '../../core/values.ts';
import { concatRows, rowCodec, type RowCodec } from './rows.ts';
import type { Delta, DeltaBatch, Operator, Row } from './types.ts';

export interface JoinSpec {
  readonly id: string;
  readonly type: 'inner' | 'left';
  readonly on: readonly { readonly left: ExprNode; readonly right: ExprNode }[];
  readonly keyTypes: readonly ColumnType[];
  readonly rightColumns: readonly string[];
}

/** A delta deferred by a fan-out, with (a right delta of a left join) the right rows its key had before it. */
export interface FanoutDelta {
  readonly key: string;
  readonly row: Row;
  readonly weight: 1 | -1;
  readonly matchesBefore?: number;
}

/**
 * Deltas of one join key to join with a large bucket after the batch: `scan` 'R' — left deltas,
 * with the right rows; 'L' — right deltas, with the left rows, except those under `skip` (paired in
 * the step already).
 */
export interface FanoutJob {
  readonly join: string;
  readonly scan: 'L' | 'R';
  readonly jk: string;
  readonly deltas: readonly FanoutDelta[];
  readonly skip: readonly string[];
}

/** Rows of the other side a join key may have before its deltas are deferred (JoinOptions). */
export const DEFAULT_FANOUT_CHUNK = 2000;

const SEPARATOR = '\x03';
const NO_MATCH = '\x04';
/** The left index of a left join's rows whose join key has a NULL (no join key encodes to it). */
const NULL_KEY = '\x02';

export class Join implements Operator {
  readonly id: string;
  readonly inputs: readonly Operator[];
  readonly statePattern: string;
  private readonly spec: JoinSpec;
  private readonly base: string;
  private readonly nulls: Row;
  private planned: {
    left: DeltaBatch;
    right: DeltaBatch;
    keys: { left: (string | null)[]; right: (string | null)[] };
  } | null = null;
  /** A bucket longer than this is joined in chunks of this many rows, after the batch. */
  readonly fanoutChunk: number;
  private deferred: FanoutJob[] = [];

  constructor(
    spec: JoinSpec,
    left: Operator,
    right: Operator,
    prefix: string,
    fanoutChunk: number,
    leftColumns: readonly string[],
  ) {
    this.id = spec.id;
    this.fanoutChunk = Math.max(1, fanoutChunk);
    this.spec = spec;
    this.inputs = [left, right];
    this.base = operatorStateBase(prefix, spec.id);
    this.statePattern = `${this.base}:*`;
    this.nulls = Object.fromEntries(spec.rightColumns.map((c) => [c, null]));
    this.merge = concatRows(leftColumns, spec.rightColumns);
    this.stored = { L: rowCodec(leftColumns), R: rowCodec(spec.rightColumns) };
  }

  /** How each side's rows are stored in its index. */
  private readonly stored: { readonly L: RowCodec; readonly R: RowCodec };

  /** One side's rows of a join key, read (loaded by needs). */
  private rowsOf(store: StateStore, side: 'L' | 'R', key: string): ReadonlyMap<string, Row> | undefined {
    return store.hgetallJson<Row>(key, this.stored[side].decode);
  }

  /** A row of a bucket as stored (a fan-out job's HSCAN page). */
  bucketRow(side: 'L' | 'R', json: string): Row {
    return this.stored[side].decode(json);
  }

  /** A left row and a right row (or the right NULLs) as one row: a literal of the joined shape. */
  private readonly merge: (left: Row, right: Row) => Row;

  /** Index key names, made once per join key and batch (the same string is then hashed once). */
  private names = { L: new Map<string, string>(), R: new Map<string, string>() };

  private index(side: 'L' | 'R', jk: string): string {
    const names = this.names[side];
    let name = names.get(jk);
    if (name === undefined) names.set(jk, (name = `${this.base}:${side}:${jk}`));
    return name;
  }

  /** The Redis key of one join key's rows on one side. */
  bucket(side: 'L' | 'R', jk: string): string {
    return this.index(side, jk);
  }

  /** The jobs the last step deferred (taken once). */
  takeDeferred(): FanoutJob[] {
    const jobs = this.deferred;
    this.deferred = [];
    return jobs;
  }

  /** A bucket too long to join in the step (its length is known: needs asked for it). */
  private tooLong(store: StateStore, side: 'L' | 'R', jk: string): boolean {
    const n = store.hlen(this.index(side, jk));
    if (n === undefined) throw new Error(`${this.id}: bucket ${side}:${jk} was not loaded`);
    return n > this.fanoutChunk;
  }

  private get counts(): string {
    return `${this.base}:Rn`;
  }

  private joinKey(row: Row | null, side: 'left' | 'right'): string | null {
    if (row === null)
      throw new PlanError(
        `${this.id}: a row left without its old content, which the join needs; set REPLICA IDENTITY FULL on the source table`,
      );
    const values: Value[] = [];
    for (const pair of this.spec.on) {
      const v = evaluate(pair[side], row);
      if (v === null) return null;
      values.push(v);
    }
    return encodeRowKey(this.spec.keyTypes, values);
  }

  /** The join keys of a batch's deltas (computed once per batch, shared by needs and step). */
  private keysOf(left: DeltaBatch, right: DeltaBatch): { left: (string | null)[]; right: (string | null)[] } {
    if (this.planned?.left === left && this.planned.right === right) return this.planned.keys;
    this.names = { L: new Map(), R: new Map() };
    const keys = {
      left: left.deltas.map((d) => this.joinKey(d.row, 'left')),
      right: right.deltas.map((d) => this.joinKey(d.row, 'right')),
    };
    this.planned = { left, right, keys };
    return keys;
  }

  needs([left, right]: readonly DeltaBatch[], store: StateStore): Read[] {
    const reads: Read[] = [];
    // A TRUNCATE's batch is joined whole (its state is being cleared); else a long bucket only has its length read.
    const clear = left!.clear || right!.clear;
    const want = (side: 'L' | 'R', jk: string): void => {
      const key = this.index(side, jk);
      if (store.hgetall(key) !== undefined) return;
      if (clear) reads.push({ kind: 'hgetall', key });
      else if (store.hlen(key) === undefined) reads.push({ kind: 'hgetall', key, upTo: this.fanoutChunk });
    };
    const keys = this.keysOf(left!, right!);
    for (const jk of keys.left) if (jk !== null && !right!.clear) want('R', jk);
    for (const jk of keys.right) {
      if (jk === null) continue;
      want('L', jk);
      if (this.spec.type === 'left' && !right!.clear && store.hget(this.counts, jk) === undefined)
        reads.push({ kind: 'hget', key: this.counts, field: jk });
    }
    // A right side emptied under a left join: every left row comes back with NULLs.
    if (right!.clear && !left!.clear && this.spec.type === 'left') {
      const pattern = `${this.base}:L:*`;
      const keys = store.keys(pattern);
      if (keys === undefined) reads.push({ kind: 'keys', pattern });
      else for (const key of keys) if (store.hgetall(key) === undefined) reads.push({ kind: 'hgetall', key });
    }
    if ((left!.clear || right!.clear) && store.keys(this.statePattern) === undefined)
      reads.push({ kind: 'keys', pattern: this.statePattern });
    return reads;
  }

  step([left, right]: readonly DeltaBatch[], store: StateStore): DeltaBatch {
    const out: Delta[] = [];
    const isLeft = this.spec.type === 'left';
    const clear = left!.clear || right!.clear;
    if (clear) {
      const restore = right!.clear && !left!.clear && isLeft ? this.allLeftRows(store) : [];
      for (const key of store.keys(this.statePattern) ?? []) {
        if (
          (left!.clear && key.startsWith(`${this.base}:L:`)) ||
          (right!.clear && (key.startsWith(`${this.base}:R:`) || key === this.counts))
        )
          store.del(key);
      }
      if (right!.clear) store.del(this.counts);
      for (const [lk, row] of restore)
        out.push({ key: lk + SEPARATOR + NO_MATCH, row: this.merge(row, this.nulls), weight: 1 });
    }

    const keys = this.keysOf(left!, right!);
    this.planned = null;
    this.deferred = [];
    // The batch's deltas by join key (what a deferred delta is joined with in the step).
    const leftsAt = byKey(left!.deltas, keys.left);
    const rightsAt = byKey(right!.deltas, keys.right);
    const early = this.joinLeftDeltas(left!.deltas, keys.left, rightsAt, clear, store, out);
    const late = this.joinRightDeltas(right!.deltas, keys.right, leftsAt, clear, store, out);
    const touched = (deltas: readonly Delta[] | undefined): string[] => [
      ...new Set((deltas ?? []).map((d) => d.key)),
    ];
    for (const [jk, deltas] of early) {
      const job = deltas.map((d) => ({ key: d.key, row: d.row!, weight: d.weight }));
      this.deferred.push({ join: this.id, scan: 'R', jk, deltas: job, skip: touched(rightsAt.get(jk)) });
    }
    for (const [jk, deltas] of late)
      this.deferred.push({ join: this.id, scan: 'L', jk, deltas, skip: touched(leftsAt.get(jk)) });
    return { clear, deltas: out };
  }

  /**
   * Pass 1: each left delta joined with the right rows before the batch, then written into the left
   * index. Returns the left deltas whose right bucket is too long, by join key (joined after the batch).
   */
  private joinLeftDeltas(
    deltas: readonly Delta[],
    keys: readonly (string | null)[],
    rightsAt: ReadonlyMap<string, Delta[]>,
    clear: boolean,
    store: StateStore,
    out: Delta[],
  ): Map<string, Delta[]> {
    const isLeft = this.spec.type === 'left';
    const early = new Map<string, Delta[]>();
    for (let i = 0; i < deltas.length; i++) {
      const d = deltas[i]!;
      const jk = keys[i]!;
      if (jk !== null && !clear && this.tooLong(store, 'R', jk)) {
        let list = early.get(jk);
        if (!list) early.set(jk, (list = []));
        list.push(d);
      }
      const rights = jk === null || early.has(jk) ? null : this.rowsOf(store, 'R', this.index('R', jk))!;
      if (jk !== null && early.has(jk)) {
        // Deferred: only the right rows this batch touches (a long bucket is not empty: no NULL row).
        for (const [rk, rrow] of rowsBefore(rightsAt.get(jk) ?? []))
          out.push({ key: d.key + SEPARATOR + rk, row: this.merge(d.row!, rrow), weight: d.weight });
      } else if (rights && rights.size > 0) {
        for (const [rk, rrow] of rights)
          out.push({ key: d.key + SEPARATOR + rk, row: this.merge(d.row!, rrow), weight: d.weight });
      } else if (isLeft) {
        out.push({ key: d.key + SEPARATOR + NO_MATCH, row: this.merge(d.row!, this.nulls), weight: d.weight });
      }
      // A left join shows a left row with a NULL in its join key with NULLs, whatever the right
      // side holds: it is kept too (matching nothing), or a right side emptied by a TRUNCATE,
      // which clears the output, could not bring it back (allLeftRows).
      if (jk === null && !isLeft) continue;
      const index = this.index('L', jk ?? NULL_KEY);
      if (d.weight === 1) store.hset(index, d.key, this.stored.L.encode(d.row!));
      else if (!replacedNext(deltas, keys, i)) store.hdel(index, d.key);
    }
    return early;
  }

  /**
   * Pass 2: each right delta joined with the left rows after pass 1, then written into the right
   * index. Returns the right deltas whose left bucket is too long, by join key (joined after the batch).
   */
  private joinRightDeltas(
    deltas: readonly Delta[],
    keys: readonly (string | null)[],
    leftsAt: ReadonlyMap<string, Delta[]>,
    clear: boolean,
    store: StateStore,
    out: Delta[],
  ): Map<string, FanoutDelta[]> {
    const isLeft = this.spec.type === 'left';
    const late = new Map<string, FanoutDelta[]>();
    // Left joins: each join key's right-row count as the deltas move it, written once after them.
    const counts = new Map<string, number>();
    for (let i = 0; i < deltas.length; i++) {
      const d = deltas[i]!;
      const jk = keys[i]!;
      if (jk === null) continue;
      let matchesBefore = 0;
      if (isLeft) {
        matchesBefore = counts.get(jk) ?? Number(store.hget(this.counts, jk) ?? 0);
        counts.set(jk, matchesBefore + d.weight);
      }
      if (!clear && this.tooLong(store, 'L', jk)) {
        // Deferred: only the left rows this batch touches, now.
        let list = late.get(jk);
        if (!list) late.set(jk, (list = []));
        list.push({ key: d.key, row: d.row!, weight: d.weight, ...(isLeft ? { matchesBefore } : {}) });
        for (const [lk, lrow] of rowsAfter(leftsAt.get(jk) ?? []))
          this.pair(out, lk, lrow, d.key, d.row!, d.weight, matchesBefore);
      } else {
        for (const [lk, lrow] of this.rowsOf(store, 'L', this.index('L', jk))!)
          this.pair(out, lk, lrow, d.key, d.row!, d.weight, matchesBefore);
      }
      if (d.weight === 1) store.hset(this.index('R', jk), d.key, this.stored.R.encode(d.row!));
      else if (!replacedNext(deltas, keys, i)) store.hdel(this.index('R', jk), d.key);
    }
    for (const [jk, n] of counts) {
      if (n > 0) store.hset(this.counts, jk, String(n));
      else store.hdel(this.counts, jk);
    }
    return late;
  }

  /** One left row and one right delta: their pair, and (left joins) the NULL-extended row leaving or coming back. */
  private pair(
    out: Delta[],
    lk: string,
    lrow: Row,
    rk: string,
    rrow: Row,
    weight: 1 | -1,
    matchesBefore: number,
  ): void {
    out.push({ key: lk + SEPARATOR + rk, row: this.merge(lrow, rrow), weight });
    if (this.spec.type !== 'left') return;
    if (weight === 1 && matchesBefore === 0)
      out.push({ key: lk + SEPARATOR + NO_MATCH, row: this.merge(lrow, this.nulls), weight: -1 });
    if (weight === -1 && matchesBefore === 1)
      out.push({ key: lk + SEPARATOR + NO_MATCH, row: this.merge(lrow, this.nulls), weight: 1 });
  }

  /** A deferred job's output for one chunk of its bucket's rows (each row once: the caller skips rows seen). */
  chunkDeltas(job: FanoutJob, rows: readonly (readonly [string, Row])[]): Delta[] {
    const out: Delta[] = [];
    const skip = new Set(job.skip);
    if (job.scan === 'R') {
      for (const [rk, rrow] of rows)
        for (const d of skip.has(rk) ? [] : job.deltas)
          out.push({ key: d.key + SEPARATOR + rk, row: this.merge(d.row, rrow), weight: d.weight });
      return out;
    }
    for (const [lk, lrow] of rows) {
      if (skip.has(lk)) continue;
      for (const d of job.deltas) this.pair(out, lk, lrow, d.key, d.row, d.weight, d.matchesBefore ?? 0);
    }
    return out;
  }

  private allLeftRows(store: StateStore): [string, Row][] {
    const rows: [string, Row][] = [];
    for (const key of store.keys(`${this.base}:L:*`) ?? []) {
      for (const [lk, row] of this.rowsOf(store, 'L', key) ?? []) rows.push([lk, row]);
    }
    return rows;
  }
}

/**
 * A retraction followed at once by the same row's new content under the same join key (an update
 * that kept both keys): the new content's write replaces the old one, so it need not be deleted first.
 */
function replacedNext(deltas: readonly Delta[], keys: readonly (string | null)[], i: number): boolean {
  const next = deltas[i + 1];
  return next !== undefined && next.weight === 1 && next.key === deltas[i]!.key && keys[i + 1] === keys[i];
}

/** Deltas grouped by their join key (none for a NULL key). */
function byKey(deltas: readonly Delta[], keys: readonly (string | null)[]): Map<string, Delta[]> {
  const at = new Map<string, Delta[]>();
  deltas.forEach((d, i) => {
    const jk = keys[i];
    if (jk === null || jk === undefined) return;
    const list = at.get(jk);
    if (list) list.push(d);
    else at.set(jk, [d]);
  });
  return at;
}

/** The rows the keys these deltas touch held before them (a key's first delta says: −1, it was there). */
function rowsBefore(deltas: readonly Delta[]): Map<string, Row> {
  const rows = new Map<string, Row>();
  const seen = new Set<string>();
  for (const d of deltas) {
    if (seen.has(d.key)) continue;
    seen.add(d.key);
    if (d.weight === -1) rows.set(d.key, d.row!);
  }
  return rows;
}

/** The rows a key holds after its deltas (in order: the last one says), for the keys they touch. */
function rowsAfter(deltas: readonly Delta[]): Map<string, Row> {
  const rows = new Map<string, Row>();
  for (const d of deltas) {
    if (d.weight === 1) rows.set(d.key, d.row!);
    else rows.delete(d.key);
  }
  return rows;
}
