/**
 * The planner: pure functions from a batch of changes to what must happen to each view. No I/O.
 *
 * A change is a delta: −before +after. Per view:
 *
 *   rows view       old key → delete, new key → upsert(projected row) when the filter keeps it,
 *                   delete otherwise. The last action per key in the batch wins, so a batch of many
 *                   transactions costs one write per touched view row.
 *   aggregate view  −1 contribution of `before` to its group, +1 contribution of `after` to its
 *                   group; contributions to one group are summed into one GroupDelta (row count,
 *                   per-aggregate count/sum deltas, min/max candidate multiplicity deltas). A group
 *                   whose delta nets out to nothing is dropped.
 *   truncate        the view is cleared, and what the batch did to it before is forgotten.
 *
 * Stored state decides what the delta does (a group's new extreme, a row's previous image): that
 * is resolved atomically inside Redis by apply/, never here.
 */
import { UNAVAILABLE, type Change, type ChangeRow, type Row } from '../../ingest/change.ts';
import type { Value } from '../../ingest/values.ts';
import { candidateMember, encodeRowKey } from '../encoding.ts';
import { PlanError } from '../errors.ts';
import type { Accumulator, AggregateView, CompiledView, Registry, RowsView } from '../registry.ts';
import { evaluate, isTrue } from './evaluate.ts';

const NONE: ReadonlySet<string> = new Set();

export type RowOp = { readonly kind: 'upsert'; readonly json: string } | { readonly kind: 'delete' };

/** The change a batch makes to one accumulator of one group (see registry.ts `Accumulator`). */
export type AccumulatorDelta =
  | { kind: 'count'; count: number }
  /** `scales`: how many values of each scale entered (+) or left (−) — PostgreSQL shows a numeric
   * sum with the largest scale among the rows it sums, so the state keeps a multiset of scales. */
  | { kind: 'sum'; unscaled: bigint; scale: number; count: number; scales: Map<number, number> }
  | { kind: 'floatSum'; sum: number; count: number }
  /** Candidate values (order-key members) entering (+) or leaving (−) the group's multiset. */
  | { kind: 'candidates'; members: Map<string, number> };

export interface GroupDelta {
  /** The group's key values as JSON (stored with the group's row). */
  readonly groupJson: string;
  rows: number;
  readonly accumulators: AccumulatorDelta[];
}

export interface RowsViewPlan {
  readonly kind: 'rows';
  readonly view: RowsView;
  clear: boolean;
  readonly ops: Map<string, RowOp>;
}

export interface AggregateViewPlan {
  readonly kind: 'aggregate';
  readonly view: AggregateView;
  clear: boolean;
  readonly groups: Map<string, GroupDelta>;
}

export type ViewPlan = RowsViewPlan | AggregateViewPlan;

export interface RejectedChange {
  readonly change: Change;
  readonly view: string;
  readonly reason: string;
}

export interface BatchPlan {
  /** Only views the batch touches. */
  readonly views: ViewPlan[];
  /** Changes a view could not apply (parked in the dead-letter stream by the engine). */
  readonly rejected: RejectedChange[];
}

/** Plan the effect of changes (in source order) on every view of the registry but the skipped ones (stopped). */
export function planBatch(registry: Registry, changes: readonly Change[], skip: ReadonlySet<string> = NONE): BatchPlan {
  const plans = new Map<string, ViewPlan>();
  const rejected: RejectedChange[] = [];
  for (const change of changes) {
    const views = registry.byTable.get(change.table);
    if (!views) continue;
    for (const view of views) {
      if (skip.has(view.name)) continue;
      let plan = plans.get(view.name);
      if (!plan) {
        plan =
          view.kind === 'rows'
            ? { kind: 'rows', view, clear: false, ops: new Map() }
            : { kind: 'aggregate', view, clear: false, groups: new Map() };
        plans.set(view.name, plan);
      }
      try {
        if (change.op === 't') truncate(plan);
        else if (plan.kind === 'rows') planRows(plan, change);
        else planAggregate(plan, change);
      } catch (error) {
        if (!(error instanceof PlanError)) throw error;
        rejected.push({ change, view: view.name, reason: error.message });
      }
    }
  }
  const touched = [...plans.values()].filter((p) => p.clear || (p.kind === 'rows' ? p.ops.size > 0 : dropEmptyGroups(p)));
  return { views: touched, rejected };
}

function truncate(plan: ViewPlan): void {
  plan.clear = true;
  if (plan.kind === 'rows') plan.ops.clear();
  else plan.groups.clear();
}

/** The after image with unchanged (TOASTed) columns filled in from the before image. */
function completeAfter(change: Change, view: CompiledView): Row {
  const after = change.after!;
  let complete: Record<string, Value> | null = null;
  for (const column of view.columnsRead) {
    if (after[column] === undefined) {
      throw new PlanError(
        `view ${view.name}: the change to ${change.table} has no column '${column}', which the view reads (dropped from the source table, or not captured by the connector)`,
      );
    }
    if (after[column] !== UNAVAILABLE) continue;
    const known = change.before?.[column];
    if (known === undefined || known === UNAVAILABLE) {
      throw new PlanError(
        `view ${view.name}: column '${column}' of ${change.table} was not sent (unchanged TOAST value) and its old value is unknown; set REPLICA IDENTITY FULL on ${change.table}`,
      );
    }
    complete ??= { ...(after as Record<string, Value>) };
    complete[column] = known;
  }
  return complete ?? (after as Row);
}

/** The before image, which an aggregate needs whole to retract the old row. */
function completeBefore(change: Change, view: CompiledView): Row {
  const before = change.before;
  if (!before) {
    throw new PlanError(
      `view ${view.name}: ${change.op === 'd' ? 'DELETE' : 'UPDATE'} on ${change.table} came without the old row, which the aggregate needs to retract it; set REPLICA IDENTITY FULL on ${change.table}`,
    );
  }
  for (const column of view.columnsRead) {
    const v = before[column];
    if (v === undefined || v === UNAVAILABLE) {
      throw new PlanError(
        `view ${view.name}: the old row of ${change.table} lacks column '${column}' (only the key was sent), which the aggregate needs to retract it; set REPLICA IDENTITY FULL on ${change.table}`,
      );
    }
  }
  return before as Row;
}

function rowKey(view: RowsView, row: ChangeRow): string {
  return encodeRowKey(
    view.keyTypes,
    view.keyColumns.map((c) => (row[c] ?? null) as Value),
  );
}

function planRows(plan: RowsViewPlan, change: Change): void {
  const { view } = plan;
  // The old key: from the old image when the source sent one (key changes), else the record key.
  const oldImage = change.before ?? (change.op === 'd' ? change.key : null);
  const oldKey = oldImage ? rowKey(view, oldImage) : null;
  const after = change.op === 'd' ? null : completeAfter(change, view);
  const newKey = after ? rowKey(view, after) : null;
  if (oldKey !== null && oldKey !== newKey) plan.ops.set(oldKey, { kind: 'delete' });
  if (after && newKey !== null) {
    if (isTrue(view.where, after)) {
      const row: Record<string, Value> = {};
      for (const field of view.projection) row[field.name] = evaluate(field.node as never, after);
      plan.ops.set(newKey, { kind: 'upsert', json: JSON.stringify(row) });
    } else {
      plan.ops.set(newKey, { kind: 'delete' });
    }
  }
}

function planAggregate(plan: AggregateViewPlan, change: Change): void {
  const { view } = plan;
  if (change.op === 'u' || change.op === 'd') {
    const before = completeBefore(change, view);
    if (isTrue(view.where, before)) contribute(plan, before, -1);
  }
  if (change.op !== 'd') {
    const after = completeAfter(change, view);
    if (isTrue(view.where, after)) contribute(plan, after, +1);
  }
}

function contribute(plan: AggregateViewPlan, row: Row, weight: 1 | -1): void {
  const { view } = plan;
  const groupValues = view.groups.map((g) => evaluate(g.node as never, row));
  const key = encodeRowKey(view.keyTypes, groupValues);
  let group = plan.groups.get(key);
  if (!group) {
    group = { groupJson: JSON.stringify(groupValues), rows: 0, accumulators: view.accumulators.map(emptyDelta) };
    plan.groups.set(key, group);
  }
  group.rows += weight;
  for (let i = 0; i < view.accumulators.length; i++) {
    const accumulator = view.accumulators[i]!;
    const delta = group.accumulators[i]!;
    const value = evaluate(accumulator.arg, row);
    if (value === null) continue;
    switch (delta.kind) {
      case 'count':
        delta.count += weight;
        break;
      case 'floatSum':
        delta.sum += weight * Number(value);
        delta.count += weight;
        break;
      case 'sum': {
        const scale = addExact(delta, value, weight);
        delta.count += weight;
        delta.scales.set(scale, (delta.scales.get(scale) ?? 0) + weight);
        break;
      }
      case 'candidates': {
        const member = candidateMember(accumulator.arg.type, value);
        delta.members.set(member, (delta.members.get(member) ?? 0) + weight);
        break;
      }
    }
  }
}

function emptyDelta(accumulator: Accumulator): AccumulatorDelta {
  switch (accumulator.kind) {
    case 'count':
      return { kind: 'count', count: 0 };
    case 'sum':
      return { kind: 'sum', unscaled: 0n, scale: 0, count: 0, scales: new Map() };
    case 'floatSum':
      return { kind: 'floatSum', sum: 0, count: 0 };
    case 'candidates':
      return { kind: 'candidates', members: new Map() };
  }
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

/** Drop groups whose contributions cancelled out; true when any group is left. */
function dropEmptyGroups(plan: AggregateViewPlan): boolean {
  for (const [key, group] of plan.groups) {
    if (group.rows !== 0) continue;
    const untouched = group.accumulators.every((d) => {
      switch (d.kind) {
        case 'count':
          return d.count === 0;
        case 'sum':
          return d.count === 0 && d.unscaled === 0n && [...d.scales.values()].every((n) => n === 0);
        case 'floatSum':
          return d.count === 0 && d.sum === 0;
        case 'candidates':
          return [...d.members.values()].every((n) => n === 0);
      }
    });
    if (untouched) plan.groups.delete(key);
  }
  return plan.groups.size > 0;
}
