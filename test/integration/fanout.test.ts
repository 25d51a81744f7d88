/**
 * Join fan-out (docs/architecture.md, "Join fan-out"): one customer with 20,000 orders renamed, with
 * `redis.fanoutChunk` 500, changes 20,000 rows of ordersWithCustomer (orders ⋈ customers: a right
 * delta meeting a long left bucket) and a group of customerOrderCounts (customers ⟕ orders: a left
 * delta meeting a long right bucket) in chunk steps after the rename's step. The views end equal to
 * their SQL; a reader never sees half of the rename; no step carries the whole fan-out; a SIGKILL
 * between the chunks and a restart finish it with nothing doubled.
 */
import fc from 'fast-check';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { source } from '../../ingest/source-options.ts';
import { ENGINE_EVENTS, type BatchAppliedEvent } from '../../views/engine.ts';
import { createRegistry } from '../../views/registry.ts';
import { connectRedis, type RedisClient } from '../../views/store/redis.ts';
import { busyKey, fanoutKey, keyPrefix, rowsKey } from '../../views/store/keys.ts';
import { encodeRowKey } from '../../core/encoding.ts';
import { startChildService, writeShopConfig, type ChildService } from '../support/child-service.ts';
import { workload } from '../support/workload.ts';
import { startRig } from '../support/faults.ts';
import {
  connect,
  createDatabase,
  expectViewsEqualSql,
  graphql,
  shopTestConfig,
  startFixture,
  uniqueName,
  waitForSync,
  type ServiceFixture,
} from '../support/shop.ts';

const ORDERS = 20_000;
const CHUNK = 500;
const SEED = `INSERT INTO customers VALUES (1, 'Ada', 'DE', now()), (2, 'Bo', 'FR', now());
  INSERT INTO orders SELECT i, CASE WHEN i % 100 = 0 THEN 2 ELSE 1 END, 'paid', (i % 100) + 0.5, now() FROM generate_series(1, ${ORDERS}) i`;

/** The customer names on the first 1,000 rows of ordersWithCustomer (one read, one version). */
async function namesOnFirstPage(url: string): Promise<Set<string>> {
  const data = await graphql<{ ordersWithCustomerList: { nodes: { customer: string }[] } }>(
    url,
    `
      {
        ordersWithCustomerList(first: 1000) {
          nodes {
            customer
          }
        }
      }
    `,
  );
  return new Set(data.ordersWithCustomerList.nodes.map((n) => n.customer).filter((c) => c !== 'Bo'));
}

/**
 * Customer 1's name on rows of ordersWithCustomer spread over the view, read in one script with the
 * busy check as the read scripts do ('|'-joined when several), or null while the view is busy.
 */
async function sampleNames(shop: ServiceFixture): Promise<string | null> {
  const view = shop.registry.byName.get('ordersWithCustomer')!;
  const prefix = keyPrefix(shop.name);
  const sample = [1, 777, 5001, 9999, 12345, 19999].map((id) => encodeRowKey(view.keyTypes, [id]));
  const reply = await shop.redis.sendCommand<(string | null)[] | null>([
    'EVAL',
    `if redis.call('HLEN', KEYS[1]) > 0 then return nil end return redis.call('HMGET', KEYS[2], unpack(ARGV))`,
    '2',
    busyKey(prefix),
    rowsKey(prefix, view.storage),
    ...sample,
  ]);
  if (reply === null) return null;
  return [...new Set(reply.map((r) => (JSON.parse(r!) as { customer: string }).customer))].sort().join('|');
}

describe('join fan-out in chunks', () => {
  let shop: ServiceFixture;
  beforeAll(async () => {
    shop = await startFixture('fanout', {
      seed: SEED,
      config: (databaseUrl, redisUrl, name) => {
        const config = shopTestConfig(databaseUrl, redisUrl, name);
        return { ...config, redis: { ...config.redis, fanoutChunk: CHUNK } };
      },
    });
  }, 120_000);
  afterAll(() => shop?.close());

  it('a rename reaching 20,000 rows lands whole for readers, in bounded steps, equal to SQL', async () => {
    const steps: BatchAppliedEvent[] = [];
    const onStep = (e: BatchAppliedEvent): void => void steps.push(e);
    shop.service.engine.on(ENGINE_EVENTS.BATCH_APPLIED, onStep);
    const prefix = keyPrefix(shop.name);
    let reading = true;
    const seen: string[] = [];
    let busySeen = 0;
    // A reader of the view (its reads wait while the view is busy), and a watcher of the busy hash.
    const reader = (async () => {
      while (reading) seen.push([...(await namesOnFirstPage(shop.service.url))].sort().join('|'));
    })();
    // …and a watcher that reads rows of customer 1 spread over the view straight from Redis, in one
    // script with the busy check (as the read scripts do): what a reader would be given.
    const unbusied: string[] = [];
    const watcher = (async () => {
      while (reading) {
        const names = await sampleNames(shop);
        if (names === null) busySeen++;
        else unbusied.push(names);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    try {
      for (const name of ['Ada Lovelace', 'Ada L.', 'Ada']) {
        await shop.db.query(`UPDATE customers SET name = '${name}' WHERE id = 1`);
        await shop.sync(120_000);
        // Let the reader read between renames too.
        const reads = seen.length;
        for (let i = 0; i < 500 && seen.length < reads + 2; i++) await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      reading = false;
      await Promise.all([reader, watcher]);
      shop.service.engine.off(ENGINE_EVENTS.BATCH_APPLIED, onStep);
    }
    await expectViewsEqualSql(shop.service.url, shop.db, shop.registry);
    // Every read saw one name on all of customer 1's rows: never half of a rename.
    // (Most reads waited: the view was busy while the chunks ran.)
    expect(seen.length).toBeGreaterThanOrEqual(6);
    expect(new Set(seen), 'each name seen whole').toEqual(
      new Set(['Ada Lovelace', 'Ada L.', 'Ada', ...seen.slice(0, 1)]),
    );
    expect(
      seen.filter((s) => s.includes('|')),
      'reads that saw two names of customer 1 on one page',
    ).toEqual([]);
    expect(
      unbusied.filter((s) => s.includes('|')),
      'rows of customer 1 with two names while no view was busy',
    ).toEqual([]);
    expect(unbusied.length).toBeGreaterThan(0);
    const chunks = steps.filter((s) => s.fanout);
    // Three renames, each 20,000 rows of ordersWithCustomer and a group over 20,000 orders, 500 at a time.
    expect(chunks.length, 'chunk steps').toBeGreaterThanOrEqual((3 * ORDERS) / CHUNK);
    const largest = Math.max(...steps.map((s) => s.writes));
    console.log(
      `3 renames of a customer with ${ORDERS} orders: ${steps.length} steps, ${chunks.length} fan-out chunk steps, ` +
        `largest step ${largest} writes, ${seen.length} reads and ${unbusied.length} unbusy samples, busy seen ${busySeen} times`,
    );
    // A chunk of 500 left rows × (−old, +new) writes ~2,000 rows, index and state: far below the 20,000-row fan-out.
    expect(largest, 'the largest write step').toBeLessThan(ORDERS / 2);
    expect(busySeen, 'the reader found the views busy while the chunks ran').toBeGreaterThan(0);
    const metrics = await fetch(shop.service.url.replace(/\/graphql$/, '/metrics')).then((r) => r.text());
    expect(Number(/^cdc_views_fanout_steps_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(
      chunks.length,
    );
    expect(await shop.redis.sendCommand<number>(['EXISTS', fanoutKey(prefix), busyKey(prefix)])).toBe(0);
  }, 300_000);
});

describe('join fan-out after SIGKILL', () => {
  const name = uniqueName('fanoutkill');
  let db: pg.Client;
  let redis: RedisClient;
  let child: ChildService | null = null;
  let databaseUrl: string;

  beforeAll(async () => {
    databaseUrl = await createDatabase(inject('databaseUrl'), name);
    db = await connect(databaseUrl);
    redis = await connectRedis(inject('redisUrl'));
    await db.query(SEED);
  });
  afterAll(async () => {
    child?.process.kill('SIGKILL');
    await redis?.quit();
    await db?.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
    await db?.end();
  });

  it('killed between the chunks of a fan-out, it finishes it on restart with nothing lost or doubled', async () => {
    const configFile = writeShopConfig(databaseUrl, inject('redisUrl'), name, { fanoutChunk: 200 });
    const registry = createRegistry(shopTestConfig(databaseUrl, inject('redisUrl'), name));
    const prefix = keyPrefix(name);
    child = await startChildService(configFile);
    await waitForSync(db, redis, name, name, 120_000);
    await db.query(`UPDATE customers SET name = 'Ada Byron' WHERE id = 1`);
    // Kill once a job has made progress (its cursor moved) but before it ended.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const jobs = await redis.sendCommand<string[]>(['HVALS', fanoutKey(prefix)]);
      if (jobs.some((j) => (JSON.parse(j) as { cursor: string }).cursor !== '0')) break;
      if (Date.now() > deadline) throw new Error(`no fan-out seen in progress:\n${child.output()}`);
      await new Promise((r) => setTimeout(r, 2));
    }
    child.process.kill('SIGKILL');
    expect(await child.exited).toBe('SIGKILL');
    expect(
      await redis.sendCommand<number>(['HLEN', fanoutKey(prefix)]),
      'fan-outs stored at the kill',
    ).toBeGreaterThan(0);
    expect(await redis.sendCommand<string[]>(['HKEYS', busyKey(prefix)]), 'views waited on').toContain(
      'ordersWithCustomer',
    );

    child = await startChildService(configFile);
    await db.query(`UPDATE customers SET country = 'UK' WHERE id = 1`);
    await waitForSync(db, redis, name, name, 120_000);
    await expectViewsEqualSql(child.url, db, registry);
    expect(await redis.sendCommand<number>(['EXISTS', fanoutKey(prefix), busyKey(prefix)])).toBe(0);
    child.process.kill('SIGKILL');
    await child.exited;
    child = null;
  }, 300_000);
});

describe('join fan-out against SQL after random workloads', () => {
  let shop: ServiceFixture;
  beforeAll(async () => {
    shop = await startFixture('fanoutdiff', {
      seed: `INSERT INTO orders VALUES (1, 1, 'paid', 10.50, now()), (2, 1, 'paid', NULL, now()), (3, 2, 'new', 7.25, now())`,
      // Every join key with more than 2 rows on the other side is joined after its step, in chunks.
      config: (databaseUrl, redisUrl, name) => {
        const config = shopTestConfig(databaseUrl, redisUrl, name);
        return { ...config, redis: { ...config.redis, fanoutChunk: 2 } };
      },
    });
  });
  afterAll(() => shop?.close());

  it('with a bound of 2 rows, every view equals SQL after any workload', async () => {
    let chunks = 0;
    const onStep = (e: BatchAppliedEvent): void => void (chunks += e.fanout ? 1 : 0);
    shop.service.engine.on(ENGINE_EVENTS.BATCH_APPLIED, onStep);
    try {
      await fc.assert(
        fc.asyncProperty(workload, async (transactions) => {
          for (const t of transactions)
            await shop.db.query(`BEGIN; ${t.statements.join('; ')}; ${t.rollback ? 'ROLLBACK' : 'COMMIT'}`);
          await shop.sync();
          await expectViewsEqualSql(shop.service.url, shop.db, shop.registry);
        }),
        { numRuns: 20, endOnFailure: true },
      );
      // Whatever the random workloads did: a customer with five orders renamed fans out for sure.
      await shop.db.query(
        `INSERT INTO customers (id, name) VALUES (900001, 'fan'); INSERT INTO orders SELECT g, 900001, 'paid', 1.25, now() FROM generate_series(900001, 900005) g`,
      );
      await shop.sync();
      await shop.db.query(`UPDATE customers SET name = 'fan renamed' WHERE id = 900001`);
      await shop.sync();
      await expectViewsEqualSql(shop.service.url, shop.db, shop.registry);
    } finally {
      shop.service.engine.off(ENGINE_EVENTS.BATCH_APPLIED, onStep);
    }
    expect(chunks, 'fan-out chunk steps run').toBeGreaterThan(0);
  }, 180_000);
});

describe('join fan-out inside a transaction applied in parts', () => {
  let shop: ServiceFixture;
  beforeAll(async () => {
    shop = await startFixture('fanoutparts', {
      seed: SEED,
      config: (databaseUrl, redisUrl, name) => {
        const config = shopTestConfig(databaseUrl, redisUrl, name);
        return {
          ...config,
          source: source.postgres({
            url: databaseUrl,
            slot: name,
            publication: name,
            transactionPartChanges: 300,
          }),
          redis: { ...config.redis, fanoutChunk: CHUNK },
        };
      },
    });
  }, 120_000);
  afterAll(() => shop?.close());

  it('renames in a middle part and in the last part of one transaction end equal to SQL, busy until the end', async () => {
    const prefix = keyPrefix(shop.name);
    let chunks = 0;
    const onStep = (e: BatchAppliedEvent): void => void (chunks += e.fanout ? 1 : 0);
    shop.service.engine.on(ENGINE_EVENTS.BATCH_APPLIED, onStep);
    let watching = true;
    const samples: string[] = [];
    const watcher = (async () => {
      while (watching) {
        const names = await sampleNames(shop);
        if (names !== null) samples.push(names);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await shop.db.query(`BEGIN;
      INSERT INTO orders SELECT i, 2, 'new', 1.25, now() FROM generate_series(${ORDERS + 1}, ${ORDERS + 1000}) i;
      UPDATE customers SET name = 'Ada in parts' WHERE id = 1;
      INSERT INTO orders SELECT i, 1, 'new', 2.5, now() FROM generate_series(${ORDERS + 1001}, ${ORDERS + 2000}) i;
      UPDATE customers SET name = 'Ada at the end', country = 'UK' WHERE id = 1;
      COMMIT`);
    await shop.sync(120_000);
    // The watcher samples every few ms: give it the moment to sample the landed transaction too.
    for (let i = 0; i < 500 && !samples.includes('Ada at the end'); i++)
      await new Promise((r) => setTimeout(r, 10));
    watching = false;
    await watcher;
    shop.service.engine.off(ENGINE_EVENTS.BATCH_APPLIED, onStep);
    await expectViewsEqualSql(shop.service.url, shop.db, shop.registry);
    expect(chunks, 'fan-out chunk steps').toBeGreaterThan(0);
    // Never the first rename's name, nor two names: the transaction and its fan-outs land as one.
    expect(new Set(samples)).toEqual(new Set(['Ada', 'Ada at the end'].filter((n) => samples.includes(n))));
    expect(samples).toContain('Ada at the end');
    expect(await shop.redis.sendCommand<number>(['EXISTS', fanoutKey(prefix), busyKey(prefix)])).toBe(0);
  }, 300_000);
});

describe('join fan-out and subscribers', () => {
  it('a subscriber gets no row-by-row entries for a fan-out, then a RESET and the view again, equal to SQL', async () => {
    const rig = await startRig('fanoutsub', {
      seed: `INSERT INTO customers VALUES (1, 'Ada', 'DE', now());
        INSERT INTO orders SELECT i, 1, 'paid', 600 + i, now() FROM generate_series(1, 3000) i`,
      config: (databaseUrl, redisUrl, name) => {
        const config = shopTestConfig(databaseUrl, redisUrl, name);
        return { ...config, redis: { ...config.redis, fanoutChunk: 500 } };
      },
    });
    try {
      await rig.untilReady();
      const copy = rig.subscribe('ordersWithCustomer');
      await new Promise((r) => setTimeout(r, 500));
      const before = { ...copy.counts };
      await rig.monitor.db.query(`UPDATE customers SET name = 'Ada King' WHERE id = 1`);
      await rig.sync();
      // The RESET comes with the fan-out's last step; the subscriber then reads the view again.
      const deadline = Date.now() + 30_000;
      while (!copy.resets.some((r) => r.includes('join fan-out')) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 1000));
      await rig.expectConsistent();
      expect(copy.resets.join('\n')).toContain('join fan-out');
      expect(copy.counts['UPDATE']! - before['UPDATE']!, 'row-by-row updates of the fan-out').toBe(0);
    } finally {
      await rig.close();
    }
  }, 180_000);
});
