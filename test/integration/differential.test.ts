/**
 * The oracle, property-based: random workloads of inserts, updates (group-key and primary-key
 * changes included), deletes, NULLs, truncates and rolled-back transactions, in multi-statement
 * transactions on PostgreSQL; after the service catches up, every view read through GraphQL equals
 * the view's SQL run on PostgreSQL.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { asc, desc, view, type Config } from '../../views/define.ts';
import { customers, orders, products } from '../../examples/shop/views.config.ts';
import { expectViewsEqualSql, shopTestConfig, startFixture, type ServiceFixture } from '../support/shop.ts';
import { workload } from '../support/workload.ts';

/**
 * The shop's views, and top-N views with limits small enough for this workload's few rows to
 * overflow them: rows leave the first N and others must come in, ties and NULLs (first under DESC)
 * decide places.
 */
function config(databaseUrl: string, redisUrl: string, name: string): Config {
  const shop = shopTestConfig(databaseUrl, redisUrl, name);
  return {
    ...shop,
    views: {
      ...shop.views,
      top2OrdersPerCustomer: view(orders)
        .orderBy((o) => [desc(o.amount), asc(o.created_at)])
        .limit(2, { per: (o) => [o.customer_id] }),
      top3Orders: view(orders)
        .orderBy((o) => [o.status, desc(o.amount)])
        .limit(3),
      cheapestProductPerCategory: view(products)
        .orderBy((p) => [p.price])
        .limit(1, { per: (p) => [p.category] }),
      customersLastSignedUp: view(customers)
        .orderBy((c) => [desc(c.created_at)])
        .limit(2),
    },
  } as Config;
}

describe('differential: views equal their SQL after random workloads', () => {
  let shop: ServiceFixture;
  beforeAll(async () => {
    shop = await startFixture('diff', {
      seed: `INSERT INTO orders VALUES (1, 1, 'paid', 10.50, now()), (2, 1, 'paid', NULL, now()), (3, 2, 'new', 7.25, now())`,
      config,
    });
  });
  afterAll(() => shop?.close());

  it('the initial snapshot equals SQL', async () => {
    await expectViewsEqualSql(shop.service.url, shop.db, shop.registry);
  });

  it('after any workload of transactions (commits and rollbacks), every view equals SQL', async () => {
    await fc.assert(
      fc.asyncProperty(workload, async (transactions) => {
        for (const t of transactions) {
          await shop.db.query(`BEGIN; ${t.statements.join('; ')}; ${t.rollback ? 'ROLLBACK' : 'COMMIT'}`);
        }
        await shop.sync();
        await expectViewsEqualSql(shop.service.url, shop.db, shop.registry);
      }),
      { numRuns: 60, endOnFailure: true },
    );
  });
});
