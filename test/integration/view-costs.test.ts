/**
 * What each view costs the writer, on /metrics: `cdc_views_view_writes_total{view}` counts the Redis
 * writes a view's operators planned, `cdc_views_view_plan_seconds_total{view}` their planning time.
 * Every write of a step is some view's, a view only counts the changes of the tables it reads, and a
 * rows view's count for one new row is the writes its layout names (operators/output.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENGINE_EVENTS, type BatchAppliedEvent } from '../../views/engine.ts';
import { startFixture, type ServiceFixture } from '../support/shop.ts';

let shop: ServiceFixture;

beforeAll(async () => {
  shop = await startFixture('costs');
}, 60_000);

afterAll(async () => {
  await shop?.close();
});

/** Per view, the value of one of the two cost counters. */
async function costs(metric: 'writes' | 'plan_seconds'): Promise<Map<string, number>> {
  const text = await fetch(shop.service.url.replace(/\/graphql$/, '/metrics')).then((r) => r.text());
  const out = new Map<string, number>();
  for (const m of text.matchAll(
    new RegExp(`^cdc_views_view_${metric}_total\\{view="([^"]+)"\\} (\\S+)$`, 'gm'),
  ))
    out.set(m[1]!, Number(m[2]));
  return out;
}

/** Each view's growth of a counter between two readings (0 for a view in neither). */
function growth(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  return new Map([...after].map(([view, n]) => [view, n - (before.get(view) ?? 0)]));
}

describe('per-view cost metrics', () => {
  it('attribute every planned write to the view that planned it, and planning time to the views that worked', async () => {
    const engine = shop.service.engine!;
    let stepWrites = 0;
    const onStep = (e: BatchAppliedEvent): void => void (stepWrites += e.writes);
    const writes0 = await costs('writes');
    const seconds0 = await costs('plan_seconds');
    engine.on(ENGINE_EVENTS.BATCH_APPLIED, onStep);
    try {
      // Products only: the views over orders, order lines or customers alone do no work.
      await shop.db.query(`INSERT INTO products VALUES (9001, 'lamp', 'home', 12.50, 3, 5)`);
      await shop.sync();
      const afterProducts = growth(writes0, await costs('writes'));
      expect(afterProducts.get('productsByCategory')).toBeGreaterThan(0);
      expect(afterProducts.get('lowStock')).toBeGreaterThan(0); // stock 3 < reorder level 5
      for (const view of ['ordersByStatus', 'largePaidOrders', 'customersByCountry', 'revenueByCustomer'])
        expect(afterProducts.get(view) ?? 0, view).toBe(0);

      // One large paid order: largePaidOrders writes its row, its key index, its two orderings, its
      // changelog entry and its entry number (operators/output.ts): 6.
      const writes1 = await costs('writes');
      await shop.db.query(`INSERT INTO customers VALUES (9001, 'Ada', 'DE', now())`);
      await shop.db.query(`INSERT INTO orders VALUES (9001, 9001, 'paid', 250.00, now())`);
      await shop.sync();
      const afterOrder = growth(writes1, await costs('writes'));
      expect(afterOrder.get('largePaidOrders')).toBe(6);
      expect(afterOrder.get('productsByCategory') ?? 0).toBe(0);

      // The order's status changes (ordersWithCustomer shows it, and joins the order to its customer
      // as before): the join rewrites the order's row in its index — one write, no delete first —
      // then the view its row, its changelog entry and its entry number: 4.
      const writes2 = await costs('writes');
      await shop.db.query(`UPDATE orders SET status = 'shipped' WHERE id = 9001`);
      await shop.sync();
      const afterUpdate = growth(writes2, await costs('writes'));
      expect(afterUpdate.get('ordersWithCustomer')).toBe(4);

      // Every write the steps carried is some view's.
      const total = [...growth(writes0, await costs('writes')).values()].reduce((a, b) => a + b, 0);
      expect(total).toBe(stepWrites);
      expect(total).toBeGreaterThan(0);
    } finally {
      engine.off(ENGINE_EVENTS.BATCH_APPLIED, onStep);
    }
    const seconds = growth(seconds0, await costs('plan_seconds'));
    expect(seconds.get('largePaidOrders')).toBeGreaterThan(0);
    expect(seconds.get('productsByCategory')).toBeGreaterThan(0);
  }, 60_000);
});
