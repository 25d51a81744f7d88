/**
 * Source tables changing shape under a running service, detected from the stream (pgoutput's
 * relation message): each case carries on, rebuilds the views it concerns, or stops them with a
 * message naming the change and the fix — never a frozen view, a misleading hint, or a query
 * failing for everyone. The views not concerned stay equal to SQL.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, writeShopConfig } from '../support/child-service.ts';
import { faultTable, record, startRig, watchEngine, type Rig } from '../support/faults.ts';
import { expectViewsEqualSql } from '../support/shop.ts';
import type { Registry } from '../../views/registry.ts';

const run = promisify(execFile);

const SEED = `
  INSERT INTO customers VALUES (1, 'Ada', 'DE', now()), (2, 'Bo', NULL, now());
  INSERT INTO products VALUES (1, 'book', 'books', 12.50, 100, 10), (2, 'game', 'games', 30.00, 100, 10);
  INSERT INTO orders VALUES (1, 1, 'paid', 120.00, now()), (2, 2, 'new', 80.00, now());
  INSERT INTO order_items VALUES (1, 1, 1, 2, 12.50), (2, 1, 2, 1, 30.00);`;

afterAll(() => console.log(`\n${faultTable()}\n`));

/** Errors of a query as the client sees them. */
async function errorsOf(url: string, query: string): Promise<{ message: string; code: string }[]> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  const body = (await response.json()) as { errors?: { message: string; extensions: { code: string } }[] };
  return (body.errors ?? []).map((e) => ({ message: e.message, code: e.extensions.code }));
}

/** The views not in `stopped` still equal SQL. */
async function othersEqualSql(rig: Rig, stopped: readonly string[]): Promise<void> {
  const registry: Registry = { ...rig.registry, views: rig.registry.views.filter((v) => !stopped.includes(v.name)) };
  await expectViewsEqualSql(rig.service.url, rig.monitor.db, registry);
}

async function withRig(prefix: string, test: (rig: Rig, seen: ReturnType<typeof watchEngine>) => Promise<void>): Promise<void> {
  const rig = await startRig(prefix, { seed: SEED });
  try {
    await rig.untilReady();
    await test(rig, watchEngine(rig.service));
  } finally {
    await rig.close();
  }
}

describe('schema changes of source tables', () => {
  it('a column added, and a column no view reads dropped: the views carry on', () =>
    withRig('sc_add', async (rig, seen) => {
      await rig.monitor.db.query(`ALTER TABLE orders ADD COLUMN note text DEFAULT 'x'`);
      await rig.monitor.db.query(`INSERT INTO orders VALUES (3, 1, 'paid', 300.00, now(), 'hello')`);
      await rig.monitor.db.query(`ALTER TABLE products DROP COLUMN name`);
      await rig.monitor.db.query(`UPDATE products SET price = 14.00 WHERE id = 1`);
      await rig.sync();
      await rig.untilReady();
      await rig.expectConsistent();
      expect(seen.stopped).toEqual([]);
      expect(seen.rebuilds).toEqual([]);
      const log = rig.log().join('');
      expect(log).toContain('column public.orders.note was added in the source database; no view reads it yet');
      expect(log).toContain('column public.products.name was dropped in the source database; no view reads it, so the views carry on');
      record({ fault: 'column added; a column no view reads dropped', outcome: 'carry on (noted in the log)', recoveryMs: null, lostChanges: 0, subscribers: 'nothing special' });
    }));

  it('a column views read dropped: exactly those views stop, naming the column and the fix', () =>
    withRig('sc_drop', async (rig, seen) => {
      await rig.monitor.db.query(`ALTER TABLE orders DROP COLUMN amount`);
      await rig.monitor.db.query(`INSERT INTO orders VALUES (3, 1, 'paid', now())`);
      await rig.sync();
      // The views reading orders.amount, and topCustomers, which reads revenueByCustomer.
      const stopped = ['revenueByCustomer', 'ordersByStatus', 'largePaidOrders', 'ordersWithCustomer', 'customerOrderCounts', 'topCustomers'];
      expect(seen.stopped.sort()).toEqual([...stopped].sort());
      const [error] = await errorsOf(rig.service.url, '{ revenueByCustomerList(first: 5) { nodes { customerId } } }');
      expect(error).toEqual({
        code: 'VIEW_UNAVAILABLE',
        message:
          'View revenueByCustomer is stopped: column public.orders.amount was dropped in the source database, and the view reads it. Fix: remove it from the view and the table declaration (or restore the column), then restart',
      });
      const ready = await fetch(rig.service.url.replace('/graphql', '/ready'));
      expect(ready.status).toBe(503);
      await othersEqualSql(rig, stopped);
      // The operator's view of it: `cdc-views status`.
      const { stdout } = await run(process.execPath, [CLI, 'status', '--config', writeShopConfig(rig.databaseUrl, rig.redisServer.url, rig.name)]);
      expect(stdout).toMatch(/revenueByCustomer\s+stopped\s+rows/);
      expect(stdout).toMatch(/customersByCountry\s+live\s+rows/);
      expect(stdout).toContain('column public.orders.amount was dropped in the source database');
      record({ fault: 'a column three views read dropped', outcome: 'detected → those views stopped (message names the column and the fix); the others carry on', recoveryMs: null, lostChanges: 0, subscribers: 'RESET with the reason on the stopped views' });
    }));

  it('a column views read changes to a type that no longer fits its declaration (int4 → int8): those views stop', () =>
    withRig('sc_type', async (rig, seen) => {
      const copy = rig.subscribe('productSales');
      await new Promise((r) => setTimeout(r, 300));
      await rig.monitor.db.query(`ALTER TABLE order_items ALTER COLUMN quantity TYPE int8`);
      await rig.monitor.db.query(`INSERT INTO order_items VALUES (3, 1, 1, 5000000000, 1.00)`);
      await rig.sync();
      // The views reading order_items.quantity, and topProductsPerCategory, which reads productRevenue.
      const stopped = ['productSales', 'salesByCategory', 'productRevenue', 'topProductsPerCategory'];
      expect(seen.stopped.sort()).toEqual([...stopped].sort());
      const [error] = await errorsOf(rig.service.url, '{ productSalesList(first: 5) { nodes { productId } } }');
      expect(error?.message).toBe(
        'View productSales is stopped: column public.order_items.quantity changed type from int4 to int8, which no longer fits its declaration. Fix: declare the column with its new type in the config, then restart (the views are rebuilt)',
      );
      // Its subscribers are told, not left waiting.
      const deadline = Date.now() + 5000;
      while (copy.resets.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(copy.resets.join('\n')).toContain('changed type from int4 to int8');
      await othersEqualSql(rig, stopped);
      record({ fault: 'type of a column a view reads changed, no longer its declared type (int4 → int8)', outcome: 'detected → that view stopped, with the fix; others carry on', recoveryMs: null, lostChanges: 0, subscribers: 'RESET with the reason' });
    }));

  it('a rewrite that changes values outside the stream (numeric scale 2 → 3): the views are rebuilt and equal SQL', () =>
    withRig('sc_scale', async (rig, seen) => {
      const started = Date.now();
      await rig.monitor.db.query(`ALTER TABLE products ALTER COLUMN price TYPE numeric(10, 3)`);
      await rig.monitor.db.query(`UPDATE products SET price = 31.125 WHERE id = 2`);
      await rig.sync();
      await rig.untilReady();
      const recoveryMs = Date.now() - started;
      expect(seen.rebuilds).toEqual([
        'column public.products.price changed type from numeric(10,2) to numeric(10,3): the table was rewritten outside the change stream, so the views are rebuilt from a fresh snapshot',
      ]);
      await rig.expectConsistent();
      const data = await fetch(rig.service.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ productsByCategory(category: "books") { cheapest } }' }) });
      expect(JSON.stringify(await data.json())).toContain('"12.500"');
      record({ fault: 'numeric scale of a column changed (table rewritten outside the stream)', outcome: 'detected → views rebuilt from a fresh snapshot', recoveryMs, lostChanges: 0, subscribers: 'RESET, then a fresh snapshot' });
    }));

  it('a table renamed: its views stop (never frozen), naming the new name', () =>
    withRig('sc_rename', async (rig, seen) => {
      await rig.monitor.db.query(`ALTER TABLE customers RENAME TO clients`);
      await rig.monitor.db.query(`INSERT INTO clients VALUES (3, 'Cy', 'FR', now())`);
      await rig.sync();
      // Every view over customers (directly, or joined).
      expect(seen.stopped.sort()).toEqual(['customerOrderCounts', 'customersByCountry', 'ordersWithCustomer']);
      const [error] = await errorsOf(rig.service.url, '{ customersByCountryList(first: 5) { nodes { country } } }');
      expect(error?.message).toContain('table public.customers was renamed to public.clients in the source database');
      await othersEqualSql(rig, ['customerOrderCounts', 'customersByCountry', 'ordersWithCustomer']);
      record({ fault: 'source table renamed', outcome: 'detected → its views stopped, naming the new name and the fix', recoveryMs: null, lostChanges: 0, subscribers: 'RESET with the reason' });
    }));

  it('REPLICA IDENTITY weakened under aggregates: they stop with the statement that fixes it; row views carry on', () =>
    withRig('sc_identity', async (rig, seen) => {
      await rig.monitor.db.query(`ALTER TABLE orders REPLICA IDENTITY DEFAULT`);
      await rig.monitor.db.query(`UPDATE orders SET amount = 400.00 WHERE id = 1`);
      await rig.sync();
      // Every view whose operators keep state over orders (aggregates, joins), and topCustomers over one of them; largePaidOrders (rows) carries on.
      const stopped = ['buyersPerProduct', 'customerOrderCounts', 'ordersByStatus', 'ordersWithCustomer', 'revenueByCustomer', 'topCustomers'];
      expect(seen.stopped.sort()).toEqual(stopped);
      const [error] = await errorsOf(rig.service.url, '{ ordersByStatusList(first: 5) { nodes { status } } }');
      expect(error?.message).toContain('Fix: ALTER TABLE public.orders REPLICA IDENTITY FULL;');
      await othersEqualSql(rig, stopped);
      record({ fault: 'REPLICA IDENTITY of a table aggregates read weakened to DEFAULT', outcome: 'detected → the aggregates stopped with the fixing statement; row views carry on', recoveryMs: null, lostChanges: 0, subscribers: 'RESET with the reason' });
    }));
});
