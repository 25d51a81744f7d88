/**
 * `cdc-views verify`: every live view against its SQL on the database — equal after a workload and
 * while writes go on (differences in flight are read again once the views caught up, never
 * reported), and a row corrupted, lost or invented in Redis is reported by key with both sides,
 * exiting 1.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { encodeRowKey } from '../../core/encoding.ts';
import { keyPrefix, metaKey, rowsKey } from '../../views/store/keys.ts';
import { CLI, writeShopConfig } from '../support/child-service.ts';
import { startFixture, type ServiceFixture } from '../support/shop.ts';

const run = promisify(execFile);
const SEED = `
INSERT INTO customers SELECT i, 'c' || i, (ARRAY['DE', 'FR', NULL])[1 + i % 3], now() FROM generate_series(1, 20) i;
INSERT INTO products SELECT i, 'p' || i, (ARRAY['books', 'games'])[1 + i % 2], i * 1.25, 5 * i, 12 FROM generate_series(1, 6) i;
INSERT INTO orders SELECT i, 1 + i % 20, (ARRAY['paid', 'new'])[1 + i % 2], i * 3.33, now() FROM generate_series(1, 200) i;
INSERT INTO order_items SELECT o, l, 1 + (o + l) % 6, 1 + l, 2.50 FROM generate_series(1, 200) o, generate_series(1, 2) l;
`;

describe('cdc-views verify', () => {
  let shop: ServiceFixture;
  let configFile: string;

  beforeAll(async () => {
    shop = await startFixture('verify', { seed: SEED });
    const url = new URL(inject('databaseUrl'));
    url.pathname = `/${shop.name}`;
    configFile = writeShopConfig(url.toString(), inject('redisUrl'), shop.name);
  }, 60_000);
  afterAll(() => shop?.close());

  const verify = (...args: string[]): Promise<{ code: number; stdout: string }> =>
    run(process.execPath, [CLI, 'verify', ...args, '--config', configFile]).then(
      (r) => ({ code: 0, stdout: r.stdout }),
      (e: { code: number; stdout: string; stderr: string }) => ({
        code: e.code,
        stdout: e.stdout + e.stderr,
      }),
    );

  it('every view equals its SQL after a workload, and while writes go on', async () => {
    await shop.db.query(
      `UPDATE orders SET status = 'paid', amount = amount + 1 WHERE id % 7 = 0; DELETE FROM order_items WHERE order_id % 5 = 0; UPDATE products SET stock = 3 WHERE id = 4`,
    );
    await shop.sync();
    const quiet = await verify();
    expect(quiet.code, quiet.stdout).toBe(0);
    for (const view of shop.registry.views)
      expect(quiet.stdout).toMatch(new RegExp(`✔ ${view.name} +\\d+ rows equal`));

    // Writes every few milliseconds while it reads: what differs in flight is read again, not reported.
    let id = 1000;
    let writing = true;
    const writes = (async () => {
      while (writing) {
        await shop.db.query(
          `INSERT INTO orders VALUES (${id}, ${1 + (id % 20)}, 'paid', ${id % 97}.5, now())`,
        );
        id++;
        await new Promise((r) => setTimeout(r, 3));
      }
    })();
    const busy = await verify('revenueByCustomer', 'ordersByStatus', 'topCustomers');
    writing = false;
    await writes;
    expect(busy.code, busy.stdout).toBe(0);
    expect(id, 'writes happened meanwhile').toBeGreaterThan(1010);
  }, 120_000);

  it('reports a row corrupted, lost or invented in Redis by key, with both sides, and exits 1', async () => {
    await shop.sync();
    const view = shop.registry.byName.get('revenueByCustomer')!;
    const rows = rowsKey(keyPrefix(shop.name), view.storage);
    const field = (customerId: number): string => encodeRowKey([view.keyFields[0]!.type], [customerId]);
    const stored = JSON.parse((await shop.redis.sendCommand<string>(['HGET', rows, field(3)]))!) as Record<
      string,
      unknown
    >;
    await shop.redis.sendCommand(['HSET', rows, field(3), JSON.stringify({ ...stored, revenue: '1.00' })]);
    await shop.redis.sendCommand(['HDEL', rows, field(5)]);
    await shop.redis.sendCommand(['HSET', rows, field(999), JSON.stringify({ ...stored, customerId: 999 })]);
    const found = await verify('revenueByCustomer');
    expect(found.code).toBe(1);
    expect(found.stdout).toContain('✘ revenueByCustomer');
    expect(found.stdout).toContain('3 keys differ');
    expect(found.stdout).toMatch(
      /key \[3\]\n\s+view \{[^\n]*"revenue":"1.00"[^\n]*\}\n\s+sql  \{[^\n]*"customerId":3/,
    );
    expect(found.stdout).toMatch(/key \[5\]\n\s+view null\n\s+sql  \{/);
    expect(found.stdout).toMatch(/key \[999\]\n\s+view \{[^\n]*\}\n\s+sql  null/);
    // A view that is not live (here: stopped) is not compared, and says why.
    const meta = metaKey(keyPrefix(shop.name));
    const status = await shop.redis.sendCommand<string>(['HGET', meta, 'status:ordersByStatus']);
    await shop.redis.sendCommand([
      'HSET',
      meta,
      'status:ordersByStatus',
      JSON.stringify({ state: 'stopped', reason: 'a test stopped it', since: Date.now() }),
    ]);
    const stopped = await verify('ordersByStatus');
    await shop.redis.sendCommand(['HSET', meta, 'status:ordersByStatus', status]);
    expect(stopped.code).toBe(1);
    expect(stopped.stdout).toContain(
      '? ordersByStatus           not verified: it is stopped (a test stopped it)',
    );
    const unknown = await verify('noSuchView');
    expect(unknown.code).not.toBe(0);
    expect(unknown.stdout).toContain('but found noSuchView');
  }, 120_000);
});
