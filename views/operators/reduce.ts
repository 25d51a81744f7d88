/**
 * Reduce: one output row per group, the group's aggregates over its input rows.
 *
 *   input  −row / +row          contributions to the row's group (an update that moves a row
 *                               between groups is −1 to the old group, +1 to the new one)
 *   state  <base>:g             HASH group key → [group values, rows, accumulator states…] (JSON)
 *          <base>:mm:<a>:<g>    ZSET distinct values of min/max accumulator a in group g (lex order)
 *          <base>:mc:<a>:<g>    HASH value → extra copies beyond the first
 *          <base>:cd:<a>:<g>    HASH value → copies (count distinct: the count moves on 0↔1)
 *   output −old row +new row    per group whose shown row changed (nothing when it did not: a
 *                               deleted value below the maximum changes no visible row)
 *
 * Reads: the state of each touched group (cached after the first time); for min/max only when the
 * current extreme loses its last copy (then the set's head, to find the next one); for count
 * distinct the copies of each value touched.
 */
import { operatorStateBase } from '../store/keys.ts';
import type { Value } from '../../core/values.ts';
import { PlanError } from '../errors.ts';
import { compareBytes, encodeRowKey } from '../../core/encoding.ts';
import { evaluate } from '../plan/evaluate.ts';
import type { Read, StateStore } from '../store/state-store.ts';
import {
  accumulate,
  applyArithmetic,
  emptyDelta,
  emptyState,
  finalize,
  isEmptyDelta,
  type AccDelta,
  type AccState,
  type Accumulator,
  type CompiledAggregate,
} from './aggregates.ts';
import { rowOfValues } from './rows.ts';
import type { Delta, DeltaBatch, Operator, Row } from './types.ts';
import type { ColumnType } from '../../core/values.ts';
import type { ExprNode } from '../expr.ts';

export interface ReduceSpec {
  readonly id: string;
  /** Group fields: output name and expression over the input row. */
  readonly groups: readonly { readonly name: string; readonly node: ExprNode }[];
  readonly groupTypes: readonly ColumnType[];
  readonly aggregates: readonly CompiledAggregate[];
  readonly accumulators: readonly Accumulator[];
}

type GroupState = [Value[], number, ...AccState[]];

interface GroupDelta {
  readonly values: Value[];
  rows: number;
  readonly accs: AccDelta[];
}

export class Reduce implements Operator {
  readonly id: string;
  readonly inputs: readonly Operator[];
  readonly statePattern: string;
  private readonly spec: ReduceSpec;
  private readonly base: string;
  /** The current batch's group deltas (computed once per batch, shared by needs and step). */
  private planned: { batch: DeltaBatch; groups: Map<string, GroupDelta> } | null = null;

  constructor(spec: ReduceSpec, input: Operator, prefix: string) {
    this.id = spec.id;
    this.spec = spec;
    this.inputs = [input];
    this.base = operatorStateBase(prefix, spec.id);
    this.statePattern = `${this.base}:*`;
    this.makeRow = rowOfValues([...spec.groups.map((g) => g.name), ...spec.aggregates.map((a) => a.name)]);
  }

  /** The output row from its values: group fields, then aggregates. */
  private readonly makeRow: (values: readonly Value[]) => Row;

  private get statesKey(): string {
    return `${this.base}:g`;
  }
  private candidatesKey(acc: number, group: string): string {
    return `${this.base}:mm:${acc}:${group}`;
  }
  private extrasKey(acc: number, group: string): string {
    return `${this.base}:mc:${acc}:${group}`;
  }
  private distinctKey(acc: number, group: string): string {
    return `${this.base}:cd:${acc}:${group}`;
  }

  private groupsOf(batch: DeltaBatch): Map<string, GroupDelta> {
    if (this.planned?.batch === batch) return this.planned.groups;
    const { groups: groupFields, groupTypes, accumulators } = this.spec;
    const groups = new Map<string, GroupDelta>();
    for (const d of batch.deltas) {
      if (d.row === null) throw new PlanError(`${this.id}: a row left without its old content, which the aggregate needs to retract it; set REPLICA IDENTITY FULL on the source table`);
      const values = groupFields.map((g) => evaluate(g.node, d.row!));
      const key = encodeRowKey(groupTypes, values);
      let group = groups.get(key);
      if (!group) groups.set(key, (group = { values, rows: 0, accs: accumulators.map(emptyDelta) }));
      group.rows += d.weight;
      for (let i = 0; i < accumulators.length; i++) {
        const acc = accumulators[i]!;
        const value = evaluate(acc.arg, d.row);
        if (value !== null) accumulate(acc, group.accs[i]!, value, d.weight);
      }
    }
    for (const [key, g] of groups) if (g.rows === 0 && g.accs.every(isEmptyDelta)) groups.delete(key);
    this.planned = { batch, groups };
    return groups;
  }

  needs([batch]: readonly DeltaBatch[], store: StateStore): Read[] {
    const reads: Read[] = [];
    if (batch!.clear && store.keys(this.statePattern) === undefined) reads.push({ kind: 'keys', pattern: this.statePattern });
    for (const [key, group] of this.groupsOf(batch!)) {
      const state = batch!.clear ? null : store.hgetJson<GroupState>(this.statesKey, key);
      if (state === undefined) {
        reads.push({ kind: 'hget', key: this.statesKey, field: key });
        continue;
      }
      this.spec.accumulators.forEach((acc, i) => {
        const delta = group.accs[i]!;
        if (delta.kind === 'candidates' && state) {
          const [min, max] = state[2 + i] as [string | null, string | null];
          const a = acc as Extract<Accumulator, { kind: 'candidates' }>;
          if (a.min) reads.push(...extremeReads(store, this.candidatesKey(i, key), this.extrasKey(i, key), min, delta.members, false));
          if (a.max) reads.push(...extremeReads(store, this.candidatesKey(i, key), this.extrasKey(i, key), max, delta.members, true));
        } else if (delta.kind === 'distinct' && state) {
          for (const member of delta.members.keys()) {
            if (store.hget(this.distinctKey(i, key), member) === undefined) reads.push({ kind: 'hget', key: this.distinctKey(i, key), field: member });
          }
        }
      });
    }
    return reads;
  }

  step([batch]: readonly DeltaBatch[], store: StateStore): DeltaBatch {
    const out: Delta[] = [];
    const { accumulators, aggregates } = this.spec;
    if (batch!.clear) {
      for (const key of store.keys(this.statePattern) ?? []) store.del(key);
      store.del(this.statesKey);
    }
    for (const [key, group] of this.groupsOf(batch!)) {
      const before = batch!.clear ? null : (store.hgetJson<GroupState>(this.statesKey, key) ?? null);
      const rows = (before?.[1] ?? 0) + group.rows;
      const next: GroupState = [before?.[0] ?? group.values, rows];
      accumulators.forEach((acc, i) => {
        const delta = group.accs[i]!;
        const prior = (before?.[2 + i] as AccState | undefined) ?? emptyState(acc);
        next.push(this.nextState(acc, i, key, prior, delta, store, before !== null, rows));
      });
      if (rows <= 0) {
        store.hdel(this.statesKey, key);
        accumulators.forEach((acc, i) => {
          if (acc.kind === 'candidates') {
            store.del(this.candidatesKey(i, key));
            store.del(this.extrasKey(i, key));
          } else if (acc.kind === 'distinct') store.del(this.distinctKey(i, key));
        });
      } else store.hset(this.statesKey, key, JSON.stringify(next));
      const oldRow = before && before[1] > 0 ? this.rowOf(before) : null;
      const newRow = rows > 0 ? this.rowOf(next) : null;
      if (oldRow && newRow && sameRow(oldRow, newRow)) continue;
      if (oldRow) out.push({ key, row: oldRow, weight: -1 });
      if (newRow) out.push({ key, row: newRow, weight: 1 });
    }
    void aggregates;
    this.planned = null;
    return { clear: batch!.clear, deltas: out };
  }

  /** An accumulator's next state; writes its side structures (multisets) as it goes. */
  private nextState(acc: Accumulator, i: number, group: string, prior: AccState, delta: AccDelta, store: StateStore, existed: boolean, rows: number): AccState {
    if (delta.kind === 'candidates') {
      const zkey = this.candidatesKey(i, group);
      const extras = this.extrasKey(i, group);
      const [min, max] = prior as [string | null, string | null];
      const a = acc as Extract<Accumulator, { kind: 'candidates' }>;
      const lo = a.min ? resolveExtreme(store, zkey, extras, existed ? min : null, delta.members, false) : null;
      const hi = a.max ? resolveExtreme(store, zkey, extras, existed ? max : null, delta.members, true) : null;
      if (rows > 0) {
        for (const [member, n] of delta.members) {
          if (n > 0) store.multisetAdd(zkey, extras, member, n);
          else if (n < 0) store.multisetRemove(zkey, extras, member, -n);
        }
      }
      return [lo, hi];
    }
    if (delta.kind === 'distinct') {
      let distinct = prior as number;
      const key = this.distinctKey(i, group);
      for (const [member, n] of delta.members) {
        if (n === 0) continue;
        const copies = existed ? Number(store.hget(key, member) ?? 0) : 0;
        const after = copies + n;
        if (copies <= 0 && after > 0) distinct++;
        if (copies > 0 && after <= 0) distinct--;
        if (rows <= 0) continue;
        if (after > 0) store.hset(key, member, String(after));
        else if (copies > 0) store.hdel(key, member);
      }
      return distinct;
    }
    return applyArithmetic(prior, delta);
  }

  private rowOf(state: GroupState): Row {
    const { groups, aggregates, accumulators } = this.spec;
    const values: Value[] = [];
    for (let g = 0; g < groups.length; g++) values.push(state[0][g] ?? null);
    for (const aggregate of aggregates) {
      const i = aggregate.accumulator;
      values.push(finalize(aggregate, i === null ? null : accumulators[i]!, i === null ? null : (state[2 + i] as AccState), state[1]));
    }
    return this.makeRow(values);
  }
}

export function sameRow(a: Row, b: Row): boolean {
  for (const k in a) if (a[k] !== b[k]) return false;
  for (const k in b) if (!(k in a)) return false;
  return true;
}

/**
 * Reads needed to know a multiset's new extreme (min, or max with `fromEnd`): none while the old
 * extreme keeps a copy; else its copies, and the head of the set with the copies of the members
 * this batch removes from it.
 */
function extremeReads(store: StateStore, zkey: string, extras: string, extreme: string | null, members: Map<string, number>, fromEnd: boolean): Read[] {
  if (extreme === null || (members.get(extreme) ?? 0) >= 0) return [];
  const copies = store.hget(extras, extreme);
  if (copies === undefined) return [{ kind: 'hget', key: extras, field: extreme }];
  if (1 + Number(copies ?? 0) + members.get(extreme)! > 0) return [];
  const removed = [...members].filter(([, n]) => n < 0).length;
  const head = store.zhead(zkey, removed + 1, fromEnd);
  if (head === undefined) return [{ kind: 'zhead', key: zkey, count: removed + 1, fromEnd }];
  return head.filter((m) => (members.get(m) ?? 0) < 0 && store.hget(extras, m) === undefined).map((m) => ({ kind: 'hget', key: extras, field: m }));
}

/** The multiset's extreme after the batch (everything extremeReads asked for is loaded). */
function resolveExtreme(store: StateStore, zkey: string, extras: string, extreme: string | null, members: Map<string, number>, fromEnd: boolean): string | null {
  // No closures here: this runs per group and extreme, and tsx names every closure it makes.
  let best: string | null = null;
  for (const [member, n] of members) if (n > 0 && (best === null || better(member, best, fromEnd))) best = member;
  if (extreme !== null) {
    if ((members.get(extreme) ?? 0) >= 0 || survives(store, extras, members, extreme)) {
      return best === null || better(extreme, best, fromEnd) ? extreme : best;
    }
    let removed = 0;
    for (const n of members.values()) if (n < 0) removed++;
    const head = store.zhead(zkey, removed + 1, fromEnd) ?? [];
    for (let i = 0; i < head.length; i++) {
      const m = head[fromEnd ? head.length - 1 - i : i]!;
      if ((members.get(m) ?? 0) >= 0 || survives(store, extras, members, m)) {
        if (best === null || better(m, best, fromEnd)) best = m;
        break;
      }
    }
  }
  return best;
}

/** a comes before b as the extreme: lower for min, higher for max (`fromEnd`). */
function better(a: string, b: string, fromEnd: boolean): boolean {
  return fromEnd ? compareBytes(a, b) > 0 : compareBytes(a, b) < 0;
}

/** A candidate keeps a copy after the batch's removals (extra copies + the batch's net count). */
function survives(store: StateStore, extras: string, members: Map<string, number>, m: string): boolean {
  return 1 + Number(store.hget(extras, m) ?? 0) + (members.get(m) ?? 0) > 0;
}
