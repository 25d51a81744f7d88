/**
 * Which grouped joins are planned with their aggregation below the join (views/plan/eager-aggregation.ts):
 * the shop's, and the cases it leaves out. That the rewritten plans are exact is the operator
 * property test's job (tierStats, ordersPerCustomer, topTiers); this one keeps the rewrite from
 * silently stopping to apply, which would cost state proportional to the source again.
 */
import { describe, expect, it } from 'vitest';
import { source } from '../../../ingest/source-options.ts';
import {
  and,
  avg,
  count,
  countDistinct,
  eq,
  max,
  sum,
  table,
  view,
  type ViewDef,
} from '../../../views/define.ts';
import type { PlanNode } from '../../../views/plan/graph.ts';
import { createRegistry } from '../../../views/registry.ts';
import shop from '../../../examples/shop/views.config.ts';

/** A plan as nested `kind(…)`, ids left out: `reduce(join(scan, reduce(scan)))`. */
function shape(node: PlanNode): string {
  const inputs = 'input' in node ? [node.input] : node.kind === 'join' ? [node.left, node.right] : [];
  return inputs.length === 0 ? node.kind : `${node.kind}(${inputs.map(shape).join(', ')})`;
}

const planOf = (views: Record<string, unknown>, name: string): string =>
  shape(
    createRegistry({ source: source.postgres(), views: views as Record<string, ViewDef> }).byName.get(name)!
      .plan,
  );

const items = table(
  'public.items',
  { id: 'int4', product: 'int4', qty: 'int4', weight: 'float8' },
  { key: 'id' },
);
const products = table(
  'public.products',
  { id: 'int4', region: 'int4', kind: 'text' },
  { key: ['region', 'id'] },
);

describe('aggregation below a join', () => {
  it("plans the shop's grouped joins on a key with partial aggregates, and leaves the others", () => {
    const registry = createRegistry(shop);
    const plan = (name: string): string => shape(registry.byName.get(name)!.plan);
    // Grouped by the key of the side joined on it: the partial values are the groups' values.
    expect(plan('customerOrderCounts')).toBe('project(join(scan, reduce(scan)))');
    expect(plan('productRevenue')).toBe('project(join(reduce(scan), scan))');
    // Grouped by a column of it: the partial values are combined.
    expect(plan('salesByCategory')).toBe('reduce(join(reduce(scan), scan))');
    // count distinct, and a self-join on a column that is not a key, stay as they were.
    expect(plan('buyersPerProduct')).toBe('reduce(join(scan, scan))');
    expect(plan('boughtTogether')).toBe('reduce(filter(join(scan, scan)))');
  });

  it('needs the whole key of the side it keeps, and aggregates it can combine unless grouped by that key', () => {
    const onKey = view(items).join(products, (i, p) => and(eq(p.id, i.product), eq(p.region, i.qty)));
    const onHalfKey = view(items).join(products, (i, p) => eq(p.id, i.product));
    const byKind = onKey.groupBy((i, p) => ({ kind: p.kind }));
    const byProduct = onKey.groupBy((i, p) => ({ id: p.id, region: p.region, kind: p.kind }));
    const leftOnKey = view(products).leftJoin(items, (p, i) => and(eq(i.product, p.id), eq(i.qty, p.region)));
    const views = {
      whole: byKind.select((i) => ({ n: count(), q: sum(i.qty), top: max(i.qty) })),
      half: onHalfKey.groupBy((i, p) => ({ kind: p.kind })).select((i) => ({ q: sum(i.qty) })),
      average: byKind.select((i) => ({ q: avg(i.qty) })),
      floats: byKind.select((i) => ({ w: sum(i.weight) })),
      floatAverage: byKind.select((i) => ({ w: avg(i.weight) })),
      distinct: byKind.select((i) => ({ d: countDistinct(i.qty) })),
      // Grouped by a column of the many side: the partial rows would not be one per group.
      byItem: onKey.groupBy((i) => ({ product: i.product })).select((i) => ({ q: sum(i.qty) })),
      // count(*) over a left join, combined: a row without a match adds 1.
      leftStar: leftOnKey.groupBy((p) => ({ kind: p.kind })).select(() => ({ n: count() })),
      // Grouped by the whole key: anything goes, count(*) over a left join too.
      perProduct: byProduct.select((i) => ({ q: avg(i.qty), d: countDistinct(i.qty), w: sum(i.weight) })),
      leftPerProduct: leftOnKey
        .groupBy((p) => ({ id: p.id, region: p.region }))
        .select((p, i) => ({ n: count(), items: count(i.id), q: avg(i.qty) })),
    };
    expect(planOf(views, 'whole')).toBe('reduce(join(reduce(scan), scan))');
    expect(planOf(views, 'perProduct')).toBe('project(join(reduce(scan), scan))');
    expect(planOf(views, 'leftPerProduct')).toBe('project(join(scan, reduce(scan)))');
    expect(planOf(views, 'leftStar')).toBe('reduce(join(scan, reduce(scan)))');
    expect(planOf(views, 'average')).toBe('project(reduce(join(reduce(scan), scan)))');
    for (const name of ['half', 'floats', 'floatAverage', 'distinct', 'byItem'])
      expect([name, planOf(views, name)]).toEqual([name, 'reduce(join(scan, scan))']);
  });
});
