/**
 * Definitions stored as data (stored-definitions.ts): they compile back to the same views, and a
 * swap keeps the served definitions of changed views, reading live what did not change.
 */
import { describe, expect, it } from 'vitest';
import { source } from '../../../ingest/source-options.ts';
import { count, desc, sum, table, view, type ViewDef } from '../../../views/define.ts';
import { createRegistry, type Registry } from '../../../views/registry.ts';
import { decodeDefinitions, encodeDefinitions, retiredViews } from '../../../views/stored-definitions.ts';
import type { PlanNode } from '../../../views/plan/graph.ts';
import shop from '../../../examples/shop/views.config.ts';

const orders = table(
  'public.orders',
  { id: 'int4', customer: 'int4', status: 'text', amount: 'numeric?' },
  { key: 'id' },
);

function registryOf(views: Record<string, ViewDef>): Registry {
  return createRegistry({ name: 'd', source: source.postgres(), views });
}

function stored(registry: Registry): { definitions: Map<string, string>; fingerprints: Map<string, string> } {
  return {
    definitions: encodeDefinitions(registry.views),
    fingerprints: new Map(registry.views.map((v) => [v.name, v.fingerprint])),
  };
}

/** The views a plan reads (its `view` nodes). */
function reads(node: PlanNode): string[] {
  if (node.kind === 'view') return [node.view];
  if (node.kind === 'scan') return [];
  if (node.kind === 'join') return [...reads(node.left), ...reads(node.right)];
  return reads(node.input);
}

describe('stored definitions', () => {
  it('compile back to the same views: every example view keeps its fingerprint, storage and SQL', () => {
    const registry = createRegistry(shop);
    const json = encodeDefinitions(registry.views);
    for (const text of json.values()) expect(() => JSON.parse(text)).not.toThrow();
    const back = createRegistry({ name: registry.name, source: shop.source, views: decodeDefinitions(json) });
    expect(back.views.map((v) => [v.name, v.fingerprint, v.storage, v.sql])).toEqual(
      registry.views.map((v) => [v.name, v.fingerprint, v.storage, v.sql]),
    );
  });

  const revenue = view(orders)
    .groupBy((o) => ({ customer: o.customer }))
    .select((o) => ({ orders: count(), revenue: sum(o.amount) }));
  const byStatus = view(orders)
    .groupBy((o) => ({ status: o.status }))
    .select(() => ({ orders: count() }));

  it('a changed view keeps its served definition, named by its storage, reading unchanged views live', () => {
    const top = view(revenue)
      .orderBy((r) => [desc(r.revenue)])
      .limit(3);
    const before = registryOf({ revenue, byStatus, top });
    const top5 = view(revenue)
      .orderBy((r) => [desc(r.revenue)])
      .limit(5);
    const now = registryOf({ revenue, byStatus, top: top5 });
    const { views, problems } = retiredViews(now, stored(before), new Set(['top']), new Set(['top']));
    expect(problems).toEqual(new Map());
    const old = before.byName.get('top')!;
    expect(views.map((v) => [v.name, v.serves, v.storage])).toEqual([[old.storage, 'top', old.storage]]);
    expect(old.storage).not.toBe(now.byName.get('top')!.storage);
    expect(reads(views[0]!.plan)).toEqual(['revenue']);
  });

  it('a view changed with the view it reads reads that view retired; one reading a view rebuilt without a swap is not kept', () => {
    const before = registryOf({
      revenue,
      top: view(revenue)
        .orderBy((r) => [desc(r.revenue)])
        .limit(3),
    });
    const revenue2 = view(orders)
      .groupBy((o) => ({ customer: o.customer }))
      .select((o) => ({ orders: count(), revenue: sum(o.amount), paid: count(o.amount) }));
    const now = registryOf({
      revenue: revenue2,
      top: view(revenue2)
        .orderBy((r) => [desc(r.revenue)])
        .limit(3),
    });
    const both = retiredViews(now, stored(before), new Set(['revenue', 'top']), new Set(['revenue', 'top']));
    expect(both.problems).toEqual(new Map());
    expect(reads(both.views.find((v) => v.serves === 'top')!.plan)).toEqual([
      before.byName.get('revenue')!.storage,
    ]);

    // revenue rebuilt without keeping its old definition (say, it had stopped): top cannot be kept.
    const alone = retiredViews(now, stored(before), new Set(['top']), new Set(['revenue', 'top']));
    expect(alone.views).toEqual([]);
    expect(alone.problems.get('top')).toBe('it reads revenue, which is rebuilt without the old one serving');
  });

  it('a served definition reading a column no view of the new config reads is not kept (the source would not stream it)', () => {
    const before = registryOf({ revenue, byStatus });
    const now = registryOf({
      byStatus: view(orders)
        .groupBy((o) => ({ status: o.status }))
        .select((o) => ({ orders: count(), customers: count(o.customer) })),
    });
    const kept = retiredViews(now, stored(before), new Set(['byStatus']), new Set(['byStatus']));
    expect(kept.problems).toEqual(new Map());
    const narrow = registryOf({
      byStatus: view(orders)
        .groupBy((o) => ({ status: o.status }))
        .select(() => ({ total: count() })),
      revenue: view(orders)
        .groupBy((o) => ({ customer: o.customer }))
        .select(() => ({ n: count() })),
    });
    const { problems } = retiredViews(
      narrow,
      stored(registryOf({ revenue, byStatus })),
      new Set(['revenue']),
      new Set(['revenue']),
    );
    expect(problems.get('revenue')).toBe('it reads public.orders.amount, which no view of this config reads');
  });

  it('a stored definition that is not the one served, or does not compile, is not kept', () => {
    const before = registryOf({ revenue, byStatus });
    const now = registryOf({
      revenue,
      byStatus: view(orders)
        .groupBy((o) => ({ status: o.status }))
        .select(() => ({ n: count() })),
    });
    const wrong = { ...stored(before), fingerprints: new Map([['byStatus', 'ffffffffffffffff']]) };
    expect(
      retiredViews(now, wrong, new Set(['byStatus']), new Set(['byStatus'])).problems.get('byStatus'),
    ).toBe('its stored definition is not the one served');
    const broken = {
      ...stored(before),
      definitions: new Map(
        [...stored(before).definitions].map(([v, d]) => [v, d.replace('"status"', '"nope"')]),
      ),
    };
    expect(
      retiredViews(now, broken, new Set(['byStatus']), new Set(['byStatus'])).problems.get('byStatus'),
    ).toMatch(/^its stored definition no longer compiles/);
  });
});
