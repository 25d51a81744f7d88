/**
 * A source transaction lands in the views at once: a reader polling during a workload of
 * transactions that move money between two groups never sees the total change — in an aggregate
 * view, a join view, and a top-N view over a view.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addDecimal } from '../../core/decimal.ts';
import { graphql, startShop, type ServiceFixture } from '../support/shop.ts';

describe('atomicity', () => {
  let shop: ServiceFixture;
  beforeAll(async () => {
    shop = await startShop(
      'atomic',
      `INSERT INTO customers VALUES (1, 'Ada', 'DE', now()), (2, 'Bo', 'FR', now());
       INSERT INTO orders VALUES (1, 1, 'paid', 500.00, now()), (2, 2, 'paid', 500.00, now()), (3, 1, 'paid', 0.00, now())`,
    );
  });
  afterAll(() => shop?.close());

  it('a transaction moving an amount between two groups is never observed half-applied', async () => {
    let writing = true;
    const observed = {
      reads: 0,
      versions: new Set<string>(),
      totals: new Set<string>(),
      counts: new Set<string>(),
      joined: new Set<string>(),
      top: new Set<string>(),
    };
    const sum = (values: readonly (string | null)[]): string => values.reduce<string>((a, v) => addDecimal(a, v ?? '0'), '0');
    const reader = (async () => {
      while (writing) {
        const data = await graphql<{
          revenueByCustomerList: { version: string; nodes: { customerId: number; orders: string; revenue: string }[] };
          ordersWithCustomerList: { nodes: { amount: string | null; customer: string }[] };
          topCustomersList: { nodes: { revenue: string | null }[] };
        }>(
          shop.service.url,
          `{ revenueByCustomerList(first: 10) { version nodes { customerId orders revenue } }
             ordersWithCustomerList(first: 10) { nodes { amount customer } }
             topCustomersList(first: 10) { nodes { revenue } } }`,
        );
        const page = data.revenueByCustomerList;
        observed.reads++;
        observed.versions.add(page.version);
        observed.totals.add(page.nodes.reduce((total, n) => addDecimal(total, n.revenue), '0'));
        observed.counts.add(page.nodes.reduce((n, r) => n + Number(r.orders), 0).toString());
        // Each list is read by its own resolver: each must be whole on its own.
        observed.joined.add(sum(data.ordersWithCustomerList.nodes.map((n) => n.amount)));
        observed.top.add(sum(data.topCustomersList.nodes.map((n) => n.revenue)));
      }
    })();
    for (let i = 0; i < 150; i++) {
      const amount = ((i % 7) + 1) * 10;
      // Money moves from customer 1 to customer 2 and back; an order moves between groups too.
      await shop.db.query(
        i % 2 === 0
          ? `BEGIN; UPDATE orders SET amount = amount - ${amount} WHERE id = 1; UPDATE orders SET amount = amount + ${amount} WHERE id = 2; UPDATE orders SET customer_id = 2 WHERE id = 3; COMMIT`
          : `BEGIN; UPDATE orders SET amount = amount + ${amount} WHERE id = 1; UPDATE orders SET amount = amount - ${amount} WHERE id = 2; UPDATE orders SET customer_id = 1 WHERE id = 3; COMMIT`,
      );
    }
    await shop.sync();
    writing = false;
    await reader;
    expect([...observed.totals]).toEqual(['1000.00']);
    expect([...observed.counts]).toEqual(['3']);
    expect([...observed.joined], 'the join view ordersWithCustomer').toEqual(['1000.00']);
    expect([...observed.top], 'the top-N view topCustomers').toEqual(['1000.00']);
    // The reader really watched the workload happen, not just its end state.
    expect(observed.versions.size).toBeGreaterThan(10);
  });
});
