/**
 * Minimal state (DESIGN.md §6.5), measured in Redis: a join keeps per joined row only the columns
 * the view reads (bounded by their size, whatever else the table holds), and an aggregate view's
 * bytes stay flat as its source grows while its groups do not.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyPrefix } from '../../views/store/keys.ts';
import { scanKeys } from '../../views/store/redis.ts';
import { startShop, type ServiceFixture } from '../support/shop.ts';

/** Every key matching a pattern (the suite's Redis is shared: SCAN to the end). */
async function keysOf(shop: ServiceFixture, pattern: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of scanKeys(shop.redis, pattern)) keys.push(...page);
  return keys;
}

/** Redis bytes of every key matching a pattern (MEMORY USAGE, which counts Redis's own overhead too). */
async function bytesOf(shop: ServiceFixture, pattern: string): Promise<{ bytes: number; keys: number }> {
  let bytes = 0;
  const keys = await keysOf(shop, pattern);
  for (const key of keys)
    bytes += (await shop.redis.sendCommand<number | null>(['MEMORY', 'USAGE', key, 'SAMPLES', '0'])) ?? 0;
  return { bytes, keys: keys.length };
}

describe('state size', () => {
  let shop: ServiceFixture;
  beforeAll(async () => {
    shop = await startShop(
      'size',
      `INSERT INTO customers SELECT g, 'customer ' || g, 'DE', now() FROM generate_series(1, 20) g`,
    );
  });
  afterAll(() => shop?.close());

  const addOrders = async (from: number, count: number): Promise<void> => {
    // Wide rows the views mostly do not read: a long status text the join view does read is kept short.
    await shop.db.query(
      `INSERT INTO orders SELECT g, 1 + g % 20, (ARRAY['paid','new','shipped','cancelled'])[1 + g % 4], (g % 500) + 0.25, now() FROM generate_series($1::int, $2::int) g`,
      [from, from + count - 1],
    );
    await shop.sync(120_000);
  };

  it("a join view's state per joined row is bounded by the columns it reads", async () => {
    await addOrders(1, 2000);
    const prefix = keyPrefix(shop.name);
    const storage = shop.registry.byName.get('ordersWithCustomer')!.storage;
    const join = await bytesOf(shop, `${prefix}:s:${storage}/join:*`);
    expect(join.keys).toBeGreaterThan(0);
    const rows = 2000 + 20; // every order (left) and every customer (right) is indexed once
    // The columns the view reads of an order (id, customer_id, status, amount) and of a customer
    // (id, name, country), as a JSON array of their values (no names): about 30 bytes; Redis adds
    // its own per-field overhead. The table's other columns (created_at) are not kept.
    const perRow = join.bytes / rows;
    console.log(
      `[state-size] ordersWithCustomer join state: ${join.bytes} B in ${join.keys} keys, ${perRow.toFixed(0)} B per indexed row`,
    );
    expect(perRow).toBeLessThan(150);
    const leftKeys = await keysOf(shop, `${prefix}:s:${storage}/join:customers:L:*`);
    const sample = await shop.redis.sendCommand<string[]>(['HGETALL', leftKeys[0]!]);
    const stored = JSON.parse(sample[1]!) as unknown[];
    // Exactly the four columns read, in the order the view first reads them (the join key, then
    // the selected fields), and no names.
    expect(stored).toHaveLength(4);
    const [customerId, id, status, amount] = stored;
    const order = await shop.db.query(
      'SELECT customer_id::text, status, amount::text FROM orders WHERE id = $1',
      [id],
    );
    expect([String(customerId), status, amount]).toEqual([
      order.rows[0].customer_id,
      order.rows[0].status,
      order.rows[0].amount,
    ]);
  });

  it("a top-N keeps each input row as its values, without the fields' names", async () => {
    const prefix = keyPrefix(shop.name);
    const top = shop.registry.byName.get('topCustomers')!.storage;
    const [setKey] = await keysOf(shop, `${prefix}:s:${top}/topN:t:*`);
    const members = await shop.redis.sendCommand<string[]>(['ZRANGE', setKey!, '0', '-1']);
    expect(members.length).toBeGreaterThan(0);
    // Every member: sort key, view key, then the input row (a revenueByCustomer row) as the array
    // of its values in the view's field order.
    const rowsKey = `${prefix}:v:${shop.registry.byName.get('revenueByCustomer')!.storage}:rows`;
    for (const member of members) {
      const [, key, stored] = member.split('\x00\x00');
      const shown = await shop.redis.sendCommand<string>(['HGET', rowsKey, key!]);
      expect(JSON.parse(stored!)).toEqual(Object.values(JSON.parse(shown) as object));
    }
  });

  it("an aggregate view's bytes do not grow with its source when its groups do not, over a join too", async () => {
    const prefix = keyPrefix(shop.name);
    // Rows, key index and operator state (the changelog is capped by its length, not by the data).
    const measure = async (view: string): Promise<number> => {
      const storage = shop.registry.byName.get(view)!.storage;
      return (
        (await bytesOf(shop, `${prefix}:v:${storage}:*`)).bytes +
        (await bytesOf(shop, `${prefix}:s:${storage}/*`)).bytes
      );
    };
    const small = await measure('ordersByStatus');
    // Customers left-joined to their orders, grouped by customer: the orders are aggregated per
    // customer below the join (plan/eager-aggregation.ts), so the join keeps a row per customer.
    const smallJoin = await measure('customerOrderCounts');
    expect(small).toBeGreaterThan(0);
    await addOrders(100_001, 20_000); // ten times the orders, the same four statuses and 20 customers
    const large = await measure('ordersByStatus');
    const largeJoin = await measure('customerOrderCounts');
    console.log(
      `[state-size] ordersByStatus: ${small} B at 2,000 orders, ${large} B at 22,000; ` +
        `customerOrderCounts: ${smallJoin} B, ${largeJoin} B`,
    );
    // max(created_at) keeps a candidate per distinct value: the orders here share one now() per batch.
    expect(large).toBeLessThan(small * 1.2 + 2000);
    expect(largeJoin).toBeLessThan(smallJoin * 1.2 + 2000);
  });
});
