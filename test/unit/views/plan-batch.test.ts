/**
 * The planner in isolation: changes in, per-view operations out (db-ivm style: assert the deltas
 * and which keys were touched).
 */
import { describe, expect, it } from 'vitest';
import type { Change, ChangeRow } from '../../../ingest/change.ts';
import { UNAVAILABLE } from '../../../ingest/change.ts';
import { source } from '../../../ingest/source-options.ts';
import { count, defineConfig, eq, max, sum, table, view } from '../../../views/define.ts';
import { candidateMember, encodeRowKey } from '../../../views/encoding.ts';
import { planBatch, type AggregateViewPlan, type RowsViewPlan } from '../../../views/plan/plan-batch.ts';
import { createRegistry } from '../../../views/registry.ts';

const orders = table('public.orders', { id: 'int4', customer: 'int4', status: 'text', amount: 'numeric?' }, { key: 'id' });
const registry = createRegistry(
  defineConfig({
    source: source.postgres(),
    views: {
      paid: view(orders).where((o) => eq(o.status, 'paid')).select((o) => ({ id: o.id, amount: o.amount })),
      totals: view(orders)
        .where((o) => eq(o.status, 'paid'))
        .groupBy((o) => ({ customer: o.customer }))
        .select((o) => ({ n: count(), total: sum(o.amount), largest: max(o.amount) })),
    },
  }),
);

const src = { connector: 'postgresql', name: 't', db: '', snapshot: false } as const;
const row = (id: number, customer: number, status: string, amount: string | null): ChangeRow => ({ id, customer, status, amount });
const insert = (after: ChangeRow): Change => ({ table: 'public.orders', op: 'c', before: null, after, key: { id: after['id'] as number }, source: src });
const update = (before: ChangeRow | null, after: ChangeRow): Change => ({ table: 'public.orders', op: 'u', before, after, key: { id: after['id'] as number }, source: src });
const remove = (before: ChangeRow): Change => ({ table: 'public.orders', op: 'd', before, after: null, key: { id: before['id'] as number }, source: src });
const key = (n: number): string => encodeRowKey(['int4'], [n]);

function plans(changes: Change[]): { paid?: RowsViewPlan; totals?: AggregateViewPlan; rejected: string[] } {
  const plan = planBatch(registry, changes);
  return {
    paid: plan.views.find((v) => v.view.name === 'paid') as RowsViewPlan | undefined,
    totals: plan.views.find((v) => v.view.name === 'totals') as AggregateViewPlan | undefined,
    rejected: plan.rejected.map((r) => r.reason),
  } as never;
}

describe('planBatch', () => {
  it('projects rows the filter keeps and deletes rows it drops', () => {
    const { paid } = plans([insert(row(1, 7, 'paid', '10.50')), insert(row(2, 7, 'new', '3.00'))]);
    expect([...paid!.ops]).toEqual([
      [key(1), { kind: 'upsert', json: '{"id":1,"amount":"10.50"}' }],
      [key(2), { kind: 'delete' }],
    ]);
  });

  it('aggregates as −before +after per group, netting contributions to one delta per group', () => {
    const { totals } = plans([
      insert(row(1, 7, 'paid', '10.50')),
      insert(row(2, 7, 'paid', null)),
      update(row(1, 7, 'paid', '10.50'), row(1, 8, 'paid', '10.50')), // group-key change: moves to 8
    ]);
    expect([...totals!.groups.keys()]).toEqual([key(7), key(8)]);
    // Accumulators: the sum of amount (sum), the candidates of amount (max); count(*) is `rows`.
    const g7 = totals!.groups.get(key(7))!;
    expect(g7.rows).toBe(1);
    expect(g7.accumulators[0]).toMatchObject({ kind: 'sum', unscaled: 0n, count: 0, scales: new Map([[2, 0]]) }); // the NULL amount does not count
    expect(g7.accumulators[1]).toEqual({ kind: 'candidates', members: new Map([[candidateMember('numeric', '10.50'), 0]]) });
    const g8 = totals!.groups.get(key(8))!;
    expect(g8).toMatchObject({ groupJson: '[8]', rows: 1 });
    expect(g8.accumulators[0]).toMatchObject({ kind: 'sum', unscaled: 1050n, scale: 2, count: 1 });
  });

  it('drops groups whose changes cancel out, and touches only the keys a change reaches', () => {
    const { totals, paid } = plans([insert(row(1, 7, 'new', '1.00')), update(row(1, 7, 'new', '1.00'), row(1, 7, 'new', '2.00'))]);
    expect(totals).toBeUndefined();
    expect([...paid!.ops.keys()]).toEqual([key(1)]);
    const cancelled = plans([insert(row(3, 9, 'paid', '5.00')), remove(row(3, 9, 'paid', '5.00'))]);
    expect(cancelled.totals).toBeUndefined();
    expect([...cancelled.paid!.ops]).toEqual([[key(3), { kind: 'delete' }]]);
  });

  it('a primary-key change deletes the old view row and writes the new one', () => {
    const { paid } = plans([update(row(1, 7, 'paid', '1.00'), row(5, 7, 'paid', '1.00'))]);
    expect([...paid!.ops]).toEqual([
      [key(1), { kind: 'delete' }],
      [key(5), { kind: 'upsert', json: '{"id":5,"amount":"1.00"}' }],
    ]);
  });

  it('a truncate clears the views and forgets what the batch did to them before', () => {
    const truncate: Change = { table: 'public.orders', op: 't', before: null, after: null, key: null, source: src };
    const { paid, totals } = plans([insert(row(1, 7, 'paid', '1.00')), truncate, insert(row(2, 7, 'paid', '2.00'))]);
    expect(paid!.clear).toBe(true);
    expect([...paid!.ops.keys()]).toEqual([key(2)]);
    expect(totals!.clear).toBe(true);
    expect(totals!.groups.get(key(7))!.rows).toBe(1);
  });

  it('fills unchanged TOAST values from the old row, and rejects aggregate changes that lack the old row', () => {
    const { paid } = plans([update(row(1, 7, 'paid', '9.99'), { ...row(1, 7, 'paid', null), amount: UNAVAILABLE })]);
    expect(paid!.ops.get(key(1))).toEqual({ kind: 'upsert', json: '{"id":1,"amount":"9.99"}' });
    const { rejected, paid: stillPlanned } = plans([update(null, row(1, 7, 'paid', '2.00'))]);
    expect(rejected).toEqual([
      'view totals: UPDATE on public.orders came without the old row, which the aggregate needs to retract it; set REPLICA IDENTITY FULL on public.orders',
    ]);
    expect(stillPlanned!.ops.get(key(1))).toEqual({ kind: 'upsert', json: '{"id":1,"amount":"2.00"}' });
  });
});
