/**
 * Output: the view's rows in Redis, and its changelog — the end of a view's graph.
 *
 *   input   deltas of the view's rows (any key); re-keyed by the view key (its key fields)
 *   state   <view>:rows   HASH view key → row (JSON, fields in declared order)
 *           <view>:idx    ZSET view keys (key order, for pages)
 *           <view>:ord:<signature>  ZSET per declared ordering: <sort terms>\x00\x00<view key>
 *           <view>:log    STREAM one entry per row whose shown content changed in the step:
 *                         o (i|u|d|reset) k r p n (entry number, without gaps) e (last of the step)
 *   output  −old +new per changed view key: what views over this view consume
 *
 * A row whose content did not change (a group's hidden state moved, an unread column changed)
 * writes nothing and logs nothing. A step holds whole source transactions, so marking its last
 * entry per view (`e`) tells a subscriber where it may apply what it got.
 */
import type { ColumnType, Value } from '../../core/values.ts';
import { encodeRowKey, orderingMember } from '../../core/encoding.ts';
import type { OrderingTerm } from '../orderings.ts';
import type { Read, StateStore } from '../store/state-store.ts';
import { sameRow } from './reduce.ts';
import { renameRow } from './rows.ts';
import { netChanges, type Delta, type DeltaBatch, type KeyChange, type Operator, type Row } from './types.ts';

export interface OutputSpec {
  readonly id: string;
  readonly view: string;
  readonly fields: readonly string[];
  readonly keyFields: readonly string[];
  readonly keyTypes: readonly ColumnType[];
  /** Declared orderings, each kept as a sorted set (key: OutputKeys.orderings, same index). */
  readonly orderings?: readonly (readonly OrderingTerm[])[];
}

export interface OutputKeys {
  readonly rows: string;
  readonly index: string;
  readonly log: string;
  /** HASH view → number of its last changelog entry. */
  readonly seq: string;
  /** The deployment's meta hash (floor:<view>: where the view's history starts). */
  readonly meta: string;
  /** One sorted set per declared ordering (OutputSpec.orderings). */
  readonly orderings?: readonly string[];
}

export class Output implements Operator {
  readonly id: string;
  readonly inputs: readonly Operator[];
  readonly spec: OutputSpec;
  readonly keys: OutputKeys;
  /** Set by the runner before each step: changes are not logged (the view is being built, or is inside a transaction applied in parts). */
  quiet = false;
  /** Changelog entries the last step wrote. */
  logged = 0;
  private readonly maxLength: number;
  private planned: { batch: DeltaBatch; changes: Map<string, KeyChange> } | null = null;

  constructor(spec: OutputSpec, input: Operator, keys: OutputKeys, changelogMaxLength: number) {
    this.id = spec.id;
    this.spec = spec;
    this.inputs = [input];
    this.keys = keys;
    this.maxLength = changelogMaxLength;
    this.ordered = renameRow(spec.fields.map((f) => [f, f]));
  }

  private viewKey(d: Delta): string {
    if (d.row === null) return d.key;
    return encodeRowKey(
      this.spec.keyTypes,
      this.spec.keyFields.map((f) => (d.row![f] ?? null) as Value),
    );
  }

  /** The batch's net change per view key (computed once per batch, shared by needs and step). */
  private changesOf(batch: DeltaBatch): Map<string, KeyChange> {
    if (this.planned?.batch === batch) return this.planned.changes;
    const rekeyed = { clear: batch.clear, deltas: batch.deltas.map((d) => ({ key: this.viewKey(d), row: d.row, weight: d.weight })) };
    const changes = netChanges(rekeyed);
    this.planned = { batch, changes };
    return changes;
  }

  needs([batch]: readonly DeltaBatch[], store: StateStore): Read[] {
    const reads: Read[] = [];
    if (store.hget(this.keys.seq, this.spec.view) === undefined) reads.push({ kind: 'hget', key: this.keys.seq, field: this.spec.view });
    // Rows that left with unknown content: their stored form (for the changelog's previous row).
    for (const [key, change] of this.changesOf(batch!)) {
      if (change.before === undefined && store.hget(this.keys.rows, key) === undefined) reads.push({ kind: 'hget', key: this.keys.rows, field: key });
    }
    return reads;
  }

  step([batch]: readonly DeltaBatch[], store: StateStore): DeltaBatch {
    const out: Delta[] = [];
    const entries: string[][] = [];
    const changes = this.changesOf(batch!);
    this.planned = null;
    const input = batch!;
    if (input.clear) {
      store.del(this.keys.rows);
      store.del(this.keys.index);
      for (const k of this.keys.orderings ?? []) store.del(k);
      if (!this.quiet) entries.push(['o', 'reset', 'why', 'a source table was truncated']);
    }
    for (const [key, change] of changes) {
      let before: Row | null;
      if (change.before === undefined) {
        before = input.clear ? null : (store.hgetJson<Row>(this.keys.rows, key) ?? null);
      } else before = change.before;
      const after = change.after === null ? null : this.ordered(change.after);
      if (before === null && after === null) continue;
      if (before !== null && after !== null && sameRow(before, after)) continue;
      if (after !== null) {
        const json = JSON.stringify(after);
        store.hset(this.keys.rows, key, json);
        if (before === null) store.zadd(this.keys.index, key);
        this.reorder(store, key, before, after);
        if (!this.quiet) entries.push(['o', before === null ? 'i' : 'u', 'k', key, 'r', json, 'p', before === null ? '' : JSON.stringify(before)]);
      } else {
        store.hdel(this.keys.rows, key);
        store.zrem(this.keys.index, key);
        this.reorder(store, key, before, null);
        if (!this.quiet) entries.push(['o', 'd', 'k', key, 'r', '', 'p', JSON.stringify(before)]);
      }
      if (before !== null) out.push({ key, row: before, weight: -1 });
      if (after !== null) out.push({ key, row: after, weight: 1 });
    }
    this.log(store, entries);
    return { clear: input.clear, deltas: out };
  }

  /** Move a row in each ordering index (only where its sort values changed). */
  private reorder(store: StateStore, key: string, before: Row | null, after: Row | null): void {
    const orderings = this.spec.orderings ?? [];
    for (let i = 0; i < orderings.length; i++) {
      // Most updates leave the sort values alone: then the member stays (it ends with the same key).
      if (before !== null && after !== null && orderings[i]!.every((t) => before[t.field] === after[t.field])) continue;
      const k = this.keys.orderings![i]!;
      const old = before === null ? null : orderingMember(orderings[i]!, before, key);
      const now = after === null ? null : orderingMember(orderings[i]!, after, key);
      if (old === now) continue;
      if (old !== null) store.zrem(k, old);
      if (now !== null) store.zadd(k, now);
    }
  }

  /** Start the view's history over (built, or a transaction too large to log row by row). */
  reset(store: StateStore, why: string): void {
    this.log(store, [['o', 'reset', 'why', why]]);
  }

  private log(store: StateStore, entries: string[][]): void {
    this.logged = entries.length;
    if (entries.length === 0) return;
    let n = Number(store.hget(this.keys.seq, this.spec.view) ?? 0);
    entries.forEach((fields, i) => {
      n++;
      fields.push('n', String(n));
      if (i === entries.length - 1) fields.push('e', '1');
      const floor = fields[1] === 'reset' ? { key: this.keys.meta, field: `floor:${this.spec.view}` } : undefined;
      store.xadd(this.keys.log, this.maxLength, fields, floor);
    });
    store.hset(this.keys.seq, this.spec.view, String(n));
  }

  /** The row with the view's fields in declared order (the stored JSON's order). */
  private readonly ordered: (row: Row) => Row;
}
