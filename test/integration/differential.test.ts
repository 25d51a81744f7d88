/**
 * The oracle, property-based: random workloads of inserts, updates (group-key and primary-key
 * changes included), deletes, NULLs, truncates and rolled-back transactions, in multi-statement
 * transactions on PostgreSQL; after the service catches up, every view read through GraphQL equals
 * the view's SQL run on PostgreSQL.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { expectViewsEqualSql, startShop, type ServiceFixture } from '../support/shop.ts';
import { workload } from '../support/workload.ts';

describe('differential: views equal their SQL after random workloads', () => {
  let shop: ServiceFixture;
  beforeAll(async () => {
    shop = await startShop('diff', `INSERT INTO orders VALUES (1, 1, 'paid', 10.50, now()), (2, 1, 'paid', NULL, now()), (3, 2, 'new', 7.25, now())`);
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
