/**
 * The oracle, property-based: random workloads of inserts, updates (group-key and primary-key
 * changes included), deletes, NULLs, truncates and rolled-back transactions, in multi-statement
 * transactions on PostgreSQL; after the service catches up, every view read through GraphQL equals
 * the view's SQL run on PostgreSQL.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, inject, it } from 'vitest';
import { startService, type Service } from '../../api/service.ts';
import { connectRedis, type RedisClient } from '../../views/apply/redis.ts';
import { createRegistry } from '../../views/registry.ts';
import { connect, createDatabase, expectViewsEqualSql, shopTestConfig, uniqueName, waitForSync } from '../support/shop.ts';
import { quietLogger } from '../support/logger.ts';

const STATUSES = ['paid', 'new', 'shipped', 'cancelled'] as const;
const COUNTRIES = ['DE', 'FR', 'US', null] as const;

const amount = fc.option(
  fc.integer({ min: -50_000, max: 500_000 }).map((cents) => (cents / 100).toFixed(2)),
  { nil: null, freq: 5 },
);
const timestamp = fc
  .integer({ min: Date.UTC(2023, 0, 1) * 1000, max: Date.UTC(2026, 0, 1) * 1000 })
  .map((us) => `'${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}+00'`);
const sqlText = (v: string | null): string => (v === null ? 'NULL' : `'${v}'`);
const orderId = fc.integer({ min: 1, max: 30 });

/** One statement that cannot fail (so a transaction never aborts by accident). */
const statement: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ id: orderId, customer: fc.integer({ min: 1, max: 5 }), status: fc.constantFrom(...STATUSES), amount, at: timestamp }).map(
      (o) =>
        `INSERT INTO orders VALUES (${o.id}, ${o.customer}, '${o.status}', ${o.amount ?? 'NULL'}, ${o.at}) ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id, status = EXCLUDED.status, amount = EXCLUDED.amount, created_at = EXCLUDED.created_at`,
    ) },
  { weight: 3, arbitrary: fc.record({ id: orderId, status: fc.constantFrom(...STATUSES) }).map((o) => `UPDATE orders SET status = '${o.status}' WHERE id = ${o.id}`) },
  { weight: 3, arbitrary: fc.record({ id: orderId, amount }).map((o) => `UPDATE orders SET amount = ${o.amount ?? 'NULL'} WHERE id = ${o.id}`) },
  { weight: 2, arbitrary: fc.record({ id: orderId, customer: fc.integer({ min: 1, max: 5 }) }).map((o) => `UPDATE orders SET customer_id = ${o.customer} WHERE id = ${o.id}`) },
  { weight: 2, arbitrary: fc.record({ from: orderId, to: orderId }).map(
      (o) => `UPDATE orders SET id = ${o.to} WHERE id = ${o.from} AND NOT EXISTS (SELECT 1 FROM orders WHERE id = ${o.to})`,
    ) },
  { weight: 3, arbitrary: orderId.map((id) => `DELETE FROM orders WHERE id = ${id}`) },
  { weight: 1, arbitrary: fc.constant(`UPDATE orders SET amount = amount + 1 WHERE status = 'paid'`) },
  { weight: 3, arbitrary: fc.record({ order: orderId, line: fc.integer({ min: 1, max: 3 }), product: fc.integer({ min: 1, max: 4 }), qty: fc.integer({ min: 1, max: 9 }), price: fc.integer({ min: 1, max: 99_999 }) }).map(
      (i) =>
        `INSERT INTO order_items VALUES (${i.order}, ${i.line}, ${i.product}, ${i.qty}, ${(i.price / 100).toFixed(2)}) ON CONFLICT (order_id, line_no) DO UPDATE SET product_id = EXCLUDED.product_id, quantity = EXCLUDED.quantity, unit_price = EXCLUDED.unit_price`,
    ) },
  { weight: 1, arbitrary: fc.record({ order: orderId, line: fc.integer({ min: 1, max: 3 }), to: orderId }).map(
      (i) => `UPDATE order_items SET order_id = ${i.to} WHERE order_id = ${i.order} AND line_no = ${i.line} AND NOT EXISTS (SELECT 1 FROM order_items WHERE order_id = ${i.to} AND line_no = ${i.line})`,
    ) },
  { weight: 1, arbitrary: fc.record({ order: orderId, line: fc.integer({ min: 1, max: 3 }) }).map((i) => `DELETE FROM order_items WHERE order_id = ${i.order} AND line_no = ${i.line}`) },
  { weight: 2, arbitrary: fc.record({ id: fc.integer({ min: 1, max: 8 }), country: fc.constantFrom(...COUNTRIES), at: timestamp }).map(
      (c) => `INSERT INTO customers VALUES (${c.id}, 'c${c.id}', ${sqlText(c.country)}, ${c.at}) ON CONFLICT (id) DO UPDATE SET country = EXCLUDED.country, created_at = EXCLUDED.created_at`,
    ) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 8 }).map((id) => `DELETE FROM customers WHERE id = ${id}`) },
  { weight: 2, arbitrary: fc.record({ id: fc.integer({ min: 1, max: 6 }), category: fc.constantFrom('books', 'games'), price: fc.integer({ min: 1, max: 99_999 }) }).map(
      (p) => `INSERT INTO products VALUES (${p.id}, 'p${p.id}', '${p.category}', ${(p.price / 100).toFixed(2)}) ON CONFLICT (id) DO UPDATE SET category = EXCLUDED.category, price = EXCLUDED.price`,
    ) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 6 }).map((id) => `DELETE FROM products WHERE id = ${id}`) },
  { weight: 1, arbitrary: fc.constantFrom('TRUNCATE orders', 'TRUNCATE order_items', 'TRUNCATE customers, products') },
);

/** Transactions of 1–6 statements; one in ten rolls back (and must leave no trace). */
const workload = fc.array(
  fc.record({ statements: fc.array(statement, { minLength: 1, maxLength: 6 }), rollback: fc.nat({ max: 9 }).map((n) => n === 0) }),
  { minLength: 1, maxLength: 30 },
);

describe('differential: views equal their SQL after random workloads', () => {
  const name = uniqueName('diff');
  let service: Service;
  let db: pg.Client;
  let redis: RedisClient;
  const config = { registry: null as ReturnType<typeof createRegistry> | null };

  beforeAll(async () => {
    const databaseUrl = await createDatabase(inject('databaseUrl'), name);
    db = await connect(databaseUrl);
    await db.query(`INSERT INTO orders VALUES (1, 1, 'paid', 10.50, now()), (2, 1, 'paid', NULL, now()), (3, 2, 'new', 7.25, now())`);
    const cfg = shopTestConfig(databaseUrl, inject('redisUrl'), name);
    config.registry = createRegistry(cfg);
    service = await startService({ config: cfg, port: 0, logger: quietLogger() });
    redis = await connectRedis(inject('redisUrl'));
    await waitForSync(db, redis, name, name);
  });

  afterAll(async () => {
    await service?.stop();
    await redis?.quit();
    await db?.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
    await db?.end();
  });

  it('the initial snapshot equals SQL', async () => {
    await expectViewsEqualSql(service.url, db, config.registry!);
  });

  it('after any workload of transactions (commits and rollbacks), every view equals SQL', async () => {
    await fc.assert(
      fc.asyncProperty(workload, async (transactions) => {
        for (const t of transactions) {
          await db.query(`BEGIN; ${t.statements.join('; ')}; ${t.rollback ? 'ROLLBACK' : 'COMMIT'}`);
        }
        await waitForSync(db, redis, name, name);
        await expectViewsEqualSql(service.url, db, config.registry!);
      }),
      { numRuns: 60, endOnFailure: true },
    );
  });
});
