/**
 * The oracle, property-based: random workloads of inserts, updates (group-key and primary-key
 * changes included), deletes, NULLs, truncates and rolled-back transactions, in multi-statement
 * transactions on PostgreSQL; after the service catches up, every view read through GraphQL equals
 * the view's SQL run on PostgreSQL.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { customers, orders, products } from '../../examples/shop/views.config.ts';
import { source } from '../../ingest/source-options.ts';
import { abs, asc, between, cast, caseWhen, count, dateTrunc, desc, eq, gt, isNull, length, like, max, min, mod, notLike, or, round, sum, view } from '../../views/define.ts';
import { defineConfig, type Config } from '../../views/config.ts';
import { expectViewsEqualSql, shopTestConfig, startFixture, within, type ServiceFixture } from '../support/shop.ts';
import { transactionSql, workload, type Transaction } from '../support/workload.ts';

/**
 * Commit (or roll back) the transactions, wait for the service, compare every view with SQL; each
 * step bounded, so a stall fails naming the step, the engine's state and the database's sessions.
 */
async function runWorkload(fixture: ServiceFixture, transactions: readonly Transaction[]): Promise<void> {
  const diagnose = () => fixture.diagnose();
  // One round trip: the transactions still commit (or roll back) one by one.
  const sql = transactions.map((t) => `${transactionSql(t)};`).join('\n');
  await within(60_000, 'the workload', fixture.db.query(sql), diagnose);
  await within(60_000, 'waiting for the views to catch up', fixture.sync(55_000), diagnose);
  await within(90_000, 'comparing every view with SQL', expectViewsEqualSql(fixture.service.url, fixture.db, fixture.registry), diagnose);
}

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
        await runWorkload(shop, transactions);
      }),
      { numRuns: 60, endOnFailure: true },
    );
    // Sixty workloads, each read back through every view: 5 s alone, about 110 s in CI beside the
    // Kafka and fault tests. A run that stalls fails on its own (runWorkload), saying where and why.
  }, 600_000);
});

/** Views whose group keys, filters and fields use the scalar functions (mod, like, dateTrunc, caseWhen, cast…). */
const functionViews = {
  /** Tumbling daily windows over a filter on mod and like. */
  ordersPerDay: view(orders)
    .where((o) => or(eq(mod(o.id, 7), 0), like(o.status, 'p%')))
    .groupBy((o) => ({ day: dateTrunc('day', o.created_at) }))
    .select((o) => ({ orders: count(), revenue: sum(o.amount), largest: max(abs(o.amount)) })),
  /** Weekly windows (Monday) by a CASE size class. */
  ordersBySize: view(orders)
    .where((o) => notLike(o.status, 'cancel%'))
    .groupBy((o) => ({
      week: dateTrunc('week', o.created_at),
      size: caseWhen(gt(o.amount, 1000), 'large').when(gt(o.amount, 100), 'medium').otherwise('small'),
    }))
    .select((o) => ({ orders: count(), total: sum(round(o.amount, 1)), units: sum(cast(o.amount, 'int4')) })),
  /** One row per order, with computed fields. */
  orderLabels: view(orders)
    .where((o) => between(o.amount, -100, 1000))
    .select((o) => ({
      id: o.id,
      parity: mod(o.customer_id, 2),
      statusLength: length(o.status),
      day: cast(o.created_at, 'date'),
      at: cast(o.created_at, 'text'),
      whole: round(o.amount),
      label: caseWhen(isNull(o.amount), 'none').otherwise(cast(o.amount, 'text')),
    })),
  /** Monthly signups per country. */
  signupsByMonth: view(customers)
    .groupBy((c) => ({ month: dateTrunc('month', c.created_at), country: c.country }))
    .select((c) => ({ customers: count(), first: min(c.created_at) })),
};

describe('differential: views with scalar functions equal their SQL after random workloads', () => {
  let fixture: ServiceFixture;
  beforeAll(async () => {
    fixture = await startFixture('difffn', {
      seed: `INSERT INTO orders VALUES (7, 1, 'paid', 10.50, '2024-12-31 23:59:59.999999+00'), (14, 1, 'new', NULL, '2025-01-01 00:00:00+00'), (3, 2, 'pending', -7.25, '2024-03-31 01:00:00+00')`,
      config: (url, redisUrl, name) =>
        defineConfig({
          name,
          source: source.postgres({ url, slot: name, publication: name }),
          redis: { url: redisUrl, durability: { mode: 'none' } },
          views: functionViews,
        }),
    });
  });
  afterAll(() => fixture?.close());

  it('after any workload of transactions, every view equals SQL', async () => {
    await expectViewsEqualSql(fixture.service.url, fixture.db, fixture.registry);
    await fc.assert(
      fc.asyncProperty(workload, async (transactions) => {
        await runWorkload(fixture, transactions);
      }),
      { numRuns: 40, endOnFailure: true },
    );
  });
});
