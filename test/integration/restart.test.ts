/**
 * A crash at any moment loses no change and doubles none: the service is SIGKILLed during the
 * initial snapshot and again in the middle of a workload; after each restart it resumes from the
 * checkpoint stored with the views, and in the end every view equals its SQL.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { busyKey, checkpointKey, keyPrefix, partsKey } from '../../views/store/keys.ts';
import { connectRedis, type RedisClient } from '../../views/store/redis.ts';
import { createRegistry } from '../../views/registry.ts';
import { startChildService, writeShopConfig, type ChildService } from '../support/child-service.ts';
import { connect, createDatabase, expectViewsEqualSql, shopTestConfig, uniqueName, waitForAppliedParts, waitForSync } from '../support/shop.ts';

describe('restart after SIGKILL', () => {
  const name = uniqueName('restart');
  let db: pg.Client;
  let redis: RedisClient;
  let databaseUrl: string;
  let child: ChildService | null = null;

  beforeAll(async () => {
    databaseUrl = await createDatabase(inject('databaseUrl'), name);
    db = await connect(databaseUrl);
    redis = await connectRedis(inject('redisUrl'));
    // Enough rows that the first kill lands inside the initial snapshot.
    await db.query(`INSERT INTO orders SELECT i, i % 50, (ARRAY['paid','new','shipped'])[1 + i % 3], (i % 1000) + 0.25, now() FROM generate_series(1, 60000) i`);
    await db.query(`INSERT INTO order_items SELECT i, 1, i % 20, 1 + i % 4, 9.99 FROM generate_series(1, 20000) i`);
  });

  afterAll(async () => {
    child?.process.kill('SIGKILL');
    await redis?.quit();
    await db?.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
    await db?.end();
  });

  async function waitReady(c: ChildService): Promise<void> {
    const deadline = Date.now() + 60_000;
    while ((await fetch(c.url.replace('/graphql', '/ready'))).status !== 200) {
      if (Date.now() > deadline) throw new Error(`not ready:\n${c.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function kill(c: ChildService): Promise<void> {
    c.process.kill('SIGKILL');
    expect(await c.exited).toBe('SIGKILL');
  }

  it('resumes with nothing lost or doubled after being killed mid-snapshot and mid-workload', async () => {
    const configFile = writeShopConfig(databaseUrl, inject('redisUrl'), name);
    const registry = createRegistry(shopTestConfig(databaseUrl, inject('redisUrl'), name));

    // 1. Killed during the initial snapshot.
    child = await startChildService(configFile);
    await new Promise((r) => setTimeout(r, 150 + Math.random() * 300));
    await kill(child);
    // Inside the initial snapshot the checkpoint holds the step counter but no source position yet.
    const checkpointAfterFirstKill = await redis.sendCommand<string[]>(['HKEYS', checkpointKey(keyPrefix(name))]);
    expect(checkpointAfterFirstKill.filter((f) => !f.startsWith('~')), 'the first kill should land inside the initial snapshot').toEqual([]);

    // 2. Restarted: it rebuilds from a fresh snapshot, then is killed again while a workload runs.
    child = await startChildService(configFile);
    await waitReady(child);
    let running = true;
    let committed = 0;
    const workload = (async () => {
      for (let i = 0; running; i++) {
        const id = 100_000 + (i % 400);
        await db.query(
          `BEGIN;
           INSERT INTO orders VALUES (${id}, ${i % 50}, 'paid', ${(i % 90) + 0.5}, now()) ON CONFLICT (id) DO UPDATE SET amount = orders.amount + 1, status = 'paid';
           UPDATE orders SET status = CASE status WHEN 'paid' THEN 'new' ELSE 'paid' END WHERE id = ${1 + (i * 7) % 60000};
           DELETE FROM orders WHERE id = ${1 + (i * 13) % 60000};
           UPDATE order_items SET quantity = quantity + 1 WHERE order_id = ${1 + (i % 20000)};
           COMMIT`,
        );
        committed++;
      }
    })();
    await new Promise((r) => setTimeout(r, 2500));
    await kill(child);
    const beforeRestart = committed;

    // 3. Restarted while the workload goes on; then the workload stops and the views must equal SQL.
    child = await startChildService(configFile);
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await workload;
    expect(committed).toBeGreaterThan(beforeRestart);
    await waitForSync(db, redis, name, name, 60_000);
    await expectViewsEqualSql(child.url, db, registry);
    expect(child.output()).toContain('resuming views from the stored checkpoint');
    await kill(child);
    child = null;
  });

  it('killed between the parts of a transaction too large for one step, it skips the parts it applied and finishes the rest', async () => {
    const parted = `${name}p`;
    const configFile = writeShopConfig(databaseUrl, inject('redisUrl'), parted, { transactionPartChanges: 500 });
    const registry = createRegistry(shopTestConfig(databaseUrl, inject('redisUrl'), parted));
    const prefix = keyPrefix(parted);
    try {
      child = await startChildService(configFile);
      await waitReady(child);
      // 16,000 changes in one transaction: 32 parts of 500.
      await db.query(`BEGIN;
        INSERT INTO orders SELECT g, g % 50, 'bulk', g % 100 + 0.5, now() FROM generate_series(200001, 208000) g;
        INSERT INTO order_items SELECT g, 2, g % 20, 1 + g % 4, 4.5 FROM generate_series(200001, 208000) g;
        COMMIT`);
      await waitForAppliedParts(redis, prefix, 3);
      await kill(child);
      const partsAtKill = await redis.sendCommand<number>(['HLEN', partsKey(prefix)]);
      expect(partsAtKill, 'parts applied before the kill').toBeGreaterThanOrEqual(3);
      expect(await redis.sendCommand<string[]>(['HKEYS', busyKey(prefix)]), 'views inside the transaction, for readers to wait on').toContain('ordersByStatus');

      child = await startChildService(configFile);
      await waitForSync(db, redis, parted, parted, 120_000);
      await expectViewsEqualSql(child.url, db, registry);
      // PostgreSQL sent the whole transaction again: the parts already in Redis were recognised by
      // their ids and skipped (applying them twice would have doubled their rows).
      const metrics = await (await fetch(child.url.replace('/graphql', '/metrics'))).text();
      const duplicates = Number(/^cdc_views_batches_skipped_duplicate_total (\d+)/m.exec(metrics)?.[1] ?? 0);
      expect(duplicates).toBeGreaterThanOrEqual(partsAtKill);
      expect(await redis.sendCommand<number>(['HLEN', partsKey(prefix)])).toBe(0);
      expect(await redis.sendCommand<number>(['EXISTS', busyKey(prefix)])).toBe(0);
      await kill(child);
      child = null;
    } finally {
      await db.query(`DELETE FROM order_items WHERE order_id > 200000; DELETE FROM orders WHERE id > 200000`);
      await db.query(`SELECT pg_drop_replication_slot('${parted}')`).catch(() => undefined);
    }
  }, 240_000);
});
