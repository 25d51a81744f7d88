/**
 * Changing views.config.ts between starts: views removed from it are deleted while every other view
 * resumes untouched (same versions, no snapshot) and stays equal to its SQL; views added back are
 * backfilled while the others keep their versions (test/integration/backfill.test.ts does it under load).
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { changelogKey, keyPrefix, metaKey, rowsKey, storageOf } from '../../views/store/keys.ts';
import { connectRedis, scanKeys, type RedisClient } from '../../views/store/redis.ts';
import { currentVersion } from '../../views/store/read.ts';
import { createRegistry } from '../../views/registry.ts';
import { startChildService, writeShopConfig, type ChildService } from '../support/child-service.ts';
import {
  connect,
  createDatabase,
  expectViewsEqualSql,
  shopTestConfig,
  uniqueName,
  waitForSync,
} from '../support/shop.ts';

describe('config changes between starts', () => {
  const name = uniqueName('cfgchange');
  let db: pg.Client;
  let redis: RedisClient;
  let databaseUrl: string;
  let child: ChildService | null = null;

  beforeAll(async () => {
    databaseUrl = await createDatabase(inject('databaseUrl'), name);
    db = await connect(databaseUrl);
    redis = await connectRedis(inject('redisUrl'));
    await db.query(
      `INSERT INTO products SELECT i, 'p' || i, 'books', 2.50, i, 3 FROM generate_series(1, 5) i`,
    );
    await db.query(
      `INSERT INTO orders SELECT i, i % 7, 'paid', i + 0.5, now() FROM generate_series(1, 50) i`,
    );
    await db.query(`INSERT INTO order_items SELECT i, 1, 1 + i % 5, 2, 2.50 FROM generate_series(1, 50) i`);
  });

  afterAll(async () => {
    child?.process.kill('SIGKILL');
    await redis?.quit();
    await db?.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
    await db?.end();
  });

  async function start(views?: string[]): Promise<ChildService> {
    const c = await startChildService(
      writeShopConfig(databaseUrl, inject('redisUrl'), name, views ? { views } : {}),
    );
    const deadline = Date.now() + 60_000;
    while (
      (await fetch(c.url.replace('/graphql', '/ready')).then(
        (r) => r.status,
        () => 0,
      )) !== 200
    ) {
      if (Date.now() > deadline) throw new Error(`not ready:\n${c.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return c;
  }
  /** The child's log lines arrive through a pipe, possibly after /ready answers. */
  async function logged(c: ChildService, text: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (!c.output().includes(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(c.output()).toContain(text);
  }
  async function stop(c: ChildService): Promise<void> {
    c.process.kill('SIGTERM');
    await c.exited;
  }
  const keysOf = async (view: string): Promise<number> => {
    let count = 0;
    for await (const keys of scanKeys(redis, `${keyPrefix(name)}:[vs]:${view}~*`)) count += keys.length;
    return count;
  };

  it('removing views deletes them and resumes the others untouched; adding them back builds only them', async () => {
    const all = createRegistry(shopTestConfig(databaseUrl, inject('redisUrl'), name));
    const removed = ['productSales', 'lowStock'];
    const kept = all.views.map((v) => v.name).filter((v) => !removed.includes(v));
    child = await start();
    expect(await keysOf('productSales')).toBeGreaterThan(0);
    await stop(child);
    const versions = await Promise.all(
      kept.map((v) => currentVersion(redis, keyPrefix(name), all.byName.get(v)!)),
    );

    child = await start(kept);
    await logged(child, 'views removed from the config: their state is deleted; the others resume untouched');
    expect(child.output()).not.toContain('building views from a fresh snapshot');
    for (const view of removed) expect(await keysOf(view), view).toBe(0);
    for (const view of removed)
      expect(
        await redis.sendCommand<number>(['EXISTS', changelogKey(keyPrefix(name), view)]),
        `${view}'s changelog`,
      ).toBe(0);
    expect(await redis.sendCommand<string[]>(['HKEYS', metaKey(keyPrefix(name))])).not.toContain(
      'status:productSales',
    );
    // The kept views were not rebuilt: the same versions, then they follow new changes exactly.
    expect(
      await Promise.all(kept.map((v) => currentVersion(redis, keyPrefix(name), all.byName.get(v)!))),
    ).toEqual(versions);
    await db.query(
      `INSERT INTO orders VALUES (100, 3, 'paid', 99.99, now()); UPDATE products SET stock = 0 WHERE id = 2; DELETE FROM order_items WHERE order_id = 7`,
    );
    await waitForSync(db, redis, name, name);
    const keptRegistry = createRegistry({
      ...shopTestConfig(databaseUrl, inject('redisUrl'), name),
      views: Object.fromEntries(
        kept.map((v) => [v, shopTestConfig(databaseUrl, inject('redisUrl'), name).views[v]!]),
      ),
    });
    await expectViewsEqualSql(child.url, db, keptRegistry);
    await stop(child);

    // Adding them back: only they are built (backfilled), the others resume with their versions.
    const keptVersions = await Promise.all(
      kept.map((v) => currentVersion(redis, keyPrefix(name), all.byName.get(v)!)),
    );
    child = await start();
    await logged(child, 'backfilling views while the others stay live');
    // /ready answers while views are backfilled beside the live ones: wait for them.
    await logged(child, 'backfill done: the views are live');
    expect(child.output()).toMatch(
      /"views":\{"productSales":"a new view","lowStock":"a new view"\},"msg":"backfilling views while the others stay live"/,
    );
    expect(child.output()).not.toContain('building views from a fresh snapshot');
    await waitForSync(db, redis, name, name);
    expect(
      await Promise.all(kept.map((v) => currentVersion(redis, keyPrefix(name), all.byName.get(v)!))),
    ).toEqual(keptVersions);
    await expectViewsEqualSql(child.url, db, all);
    await stop(child);
  }, 180_000);

  it('a swap a deploy abandoned (the config went back to the served definition) leaves nothing behind', async () => {
    // What a start of another definition of ordersByStatus, killed while building it beside the
    // served one, leaves: its status under next:, and keys of its own storage.
    const all = createRegistry(shopTestConfig(databaseUrl, inject('redisUrl'), name));
    const served = all.byName.get('ordersByStatus')!;
    const prefix = keyPrefix(name);
    const other = storageOf('ordersByStatus', 'deadbeef00000000');
    const building = {
      state: 'building',
      reason: 'backfilling: its definition changed',
      since: Date.now(),
      fingerprint: 'deadbeef00000000',
    };
    await redis.sendCommand(['HSET', metaKey(prefix), 'next:ordersByStatus', JSON.stringify(building)]);
    await redis.sendCommand(['HSET', rowsKey(prefix, other), 'k', '{}']);
    await redis.sendCommand(['HSET', `${prefix}:s:${other}/reduce:g`, 'k', '[]']);
    const rowsBefore = await redis.sendCommand<number>(['HLEN', rowsKey(prefix, served.storage)]);
    expect(rowsBefore).toBeGreaterThan(0);

    child = await start();
    await logged(child, 'this config serves theirs: it is deleted');
    expect(child.output()).not.toContain('backfilling views');
    expect(
      await redis.sendCommand<string | null>(['HGET', metaKey(prefix), 'next:ordersByStatus']),
    ).toBeNull();
    expect(await redis.sendCommand<string[]>(['KEYS', `${prefix}:[vs]:${other}*`])).toEqual([]);
    expect(await redis.sendCommand<number>(['HLEN', rowsKey(prefix, served.storage)])).toBe(rowsBefore);
    await waitForSync(db, redis, name, name);
    await expectViewsEqualSql(child.url, db, all);
    await stop(child);
  }, 120_000);
});
