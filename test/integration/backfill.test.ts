/**
 * Changing views without downtime, the way an operator does it: a rolling deploy of the ingest
 * process with a config that adds views (a table scan, a join, a top-N over a live aggregate),
 * changes one and removes one, under a live workload, with an API instance of the old config serving throughout
 * and a subscriber on an unchanged view. The ingest process is SIGKILLed once in the middle of the
 * backfill. Then `cdc-views rebuild` builds two views again while the others serve.
 *
 * What must hold: the unchanged views never stop answering and their subscriber sees no reset
 * and no gap (it ends up with exactly the rows SQL has); the changed view keeps serving its old
 * definition (kept up to date) while the new one is built beside it, until one step swaps them
 * (its subscriber gets a reset, the old instance then says the definition changed); the added and
 * changed views equal their SQL once live; nothing else is rebuilt.
 */
import { spawn } from 'node:child_process';
import { createClient } from 'graphql-ws';
import type pg from 'pg';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { changelogKey, keyPrefix, metaKey } from '../../views/store/keys.ts';
import { connectRedis, type RedisClient } from '../../views/store/redis.ts';
import { createRegistry } from '../../views/registry.ts';
import { loadConfig } from '../../cli/cdc-views.ts';
import { CLI, startChildService, writeShopConfig, type ChildService } from '../support/child-service.ts';
import {
  connect,
  createDatabase,
  expectViewsEqualSql,
  graphql,
  readViewOverSql,
  uniqueName,
  waitForSync,
} from '../support/shop.ts';

const ADDED = ['productSales', 'ordersWithCustomer', 'topCustomers'];
const REMOVED = 'customersByCountry';
/** ordersByStatus, changed: a new field (so its stored rows cannot be served as they are). */
const CHANGED = `{
  ordersByStatus: view(orders)
    .groupBy((o) => ({ status: o.status }))
    .select((o) => ({ orders: count(), withAmount: count(o.amount), total: sum(o.amount), latest: max(o.created_at), smallest: min(o.amount) })),
}`;

interface ListAnswer {
  data?: { ordersByStatusList: { nodes: { orders: number }[] } };
  errors?: { message: string }[];
}

interface Change {
  version: string;
  op: string;
  key: { customerId: number } | null;
  row: Record<string, unknown> | null;
  transactionEnd: boolean;
}

describe('views added, changed and rebuilt while the others stay live', () => {
  const name = uniqueName('backfill');
  let db: pg.Client;
  let redis: RedisClient;
  let databaseUrl: string;
  const children: ChildService[] = [];

  beforeAll(async () => {
    databaseUrl = await createDatabase(inject('databaseUrl'), name);
    db = await connect(databaseUrl);
    redis = await connectRedis(inject('redisUrl'));
    await db.query(
      `INSERT INTO customers (id, name, country) SELECT i, 'c' || i, (ARRAY['DE','FR','US',NULL])[1 + i % 4] FROM generate_series(0, 199) i`,
    );
    await db.query(
      `INSERT INTO products SELECT i, 'p' || i, (ARRAY['books','games','tools'])[1 + i % 3], 1.5 + i % 7, 10 + i % 20, 12 FROM generate_series(1, 60) i`,
    );
    await db.query(
      `INSERT INTO orders SELECT i, i % 200, (ARRAY['paid','new','shipped'])[1 + i % 3], i % 300 + 0.25, now() FROM generate_series(1, 20000) i`,
    );
    await db.query(
      `INSERT INTO order_items SELECT 1 + i % 20000, i, 1 + i % 60, 1 + i % 4, 2.50 FROM generate_series(1, 40000) i`,
    );
  });

  afterAll(async () => {
    for (const c of children) c.process.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await redis?.quit();
    await db?.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
    await db?.end();
  });

  async function waitFor(url: string, path: string, timeoutMs = 90_000): Promise<void> {
    const target = url.replace(/\/graphql$/, path);
    const deadline = Date.now() + timeoutMs;
    while (
      (await fetch(target).then(
        (r) => r.status,
        () => 0,
      )) !== 200
    ) {
      if (Date.now() > deadline)
        throw new Error(`${target} never answered 200: ${await fetch(target).then((r) => r.text(), String)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  async function statuses(): Promise<Record<string, { state: string; reason?: string; backfill?: unknown }>> {
    const flat = await redis.sendCommand<string[]>(['HGETALL', metaKey(keyPrefix(name))]);
    const out: Record<string, { state: string }> = {};
    for (let i = 0; i < flat.length; i += 2)
      if (flat[i]!.startsWith('status:'))
        out[flat[i]!.slice(7)] = JSON.parse(flat[i + 1]!) as { state: string };
    return out;
  }
  async function waitLive(views: readonly string[], timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = await statuses();
      if (views.every((v) => now[v]?.state === 'live')) return;
      if (Date.now() > deadline) throw new Error(`not live in time: ${JSON.stringify(now)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('a rolling deploy adds, changes and removes views under a live workload; the other views and their subscribers see nothing', async () => {
    const allNames = (await loadConfig(writeShopConfig(databaseUrl, inject('redisUrl'), name))).views;
    const before = Object.keys(allNames).filter((v) => !ADDED.includes(v));
    const oldConfig = writeShopConfig(databaseUrl, inject('redisUrl'), name, { views: before });
    const newConfig = writeShopConfig(databaseUrl, inject('redisUrl'), name, {
      views: Object.keys(allNames).filter((v) => v !== REMOVED),
      extraViews: CHANGED,
    });

    let ingest = await startChildService(oldConfig, {}, ['--ingest-only']);
    const api = await startChildService(oldConfig, {}, ['--api-only']);
    children.push(ingest, api);
    await waitFor(ingest.url, '/ready');
    await waitFor(api.url, '/ready');

    // A subscriber on an unchanged view, from a snapshot: it must never see a reset.
    const held = new Map<number, Record<string, unknown>>();
    const ops: string[] = [];
    const client = createClient({
      url: api.url.replace('http', 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
    });
    let subscriptionError: unknown = null;
    client.subscribe(
      {
        query:
          'subscription { revenueByCustomerChanges(snapshot: true) { version op key { customerId } row { customerId orders revenue averageOrder largestOrder smallestOrder } transactionEnd } }',
      },
      {
        next: ({ data }) => {
          const change = (data as { revenueByCustomerChanges: Change }).revenueByCustomerChanges;
          ops.push(change.op);
          if (change.op === 'RESET') held.clear();
          else if (change.op === 'DELETE') held.delete(change.key!.customerId);
          else held.set(change.key!.customerId, change.row!);
        },
        error: (e) => (subscriptionError = e),
        complete: () => undefined,
      },
    );

    // A subscriber of the changed view on the old instance: changes until the swap, then a reset.
    const changedOps: string[] = [];
    const changedClient = createClient({
      url: api.url.replace('http', 'ws'),
      webSocketImpl: WebSocket,
      retryAttempts: 0,
    });
    changedClient.subscribe(
      { query: 'subscription { ordersByStatusChanges { op } }' },
      {
        next: ({ data }) =>
          void changedOps.push((data as { ordersByStatusChanges: { op: string } }).ordersByStatusChanges.op),
        error: () => undefined,
        complete: () => undefined,
      },
    );

    // Readers of unchanged views on the old instance, all along; and of the changed view, which it
    // serves in its old definition until the swap, and then refuses as built from another one.
    let reading = true;
    let reads = 0;
    const failures: string[] = [];
    const changedReads: { at: number; orders: number }[] = [];
    const changedFailures: string[] = [];
    let swappedAt = 0;
    const changedReader = (async () => {
      while (reading) {
        const answer = await fetch(api.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: '{ ordersByStatusList { nodes { status orders } } }' }),
        }).then(
          async (r) => (await r.json()) as ListAnswer,
          (e: unknown): ListAnswer => ({ errors: [{ message: String(e) }] }),
        );
        if (answer.errors) {
          if (/built from another definition/.test(answer.errors[0]!.message)) swappedAt ||= Date.now();
          else changedFailures.push(answer.errors[0]!.message);
        } else {
          if (swappedAt) changedFailures.push('served the old definition again after the swap');
          changedReads.push({
            at: Date.now(),
            orders: answer.data!.ordersByStatusList.nodes.reduce((n, r) => n + r.orders, 0),
          });
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const reader = (async () => {
      while (reading) {
        const answer = await fetch(api.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            query:
              '{ revenueByCustomerList(first: 3) { nodes { customerId revenue } } productsByCategoryList(first: 3) { nodes { category } } }',
          }),
        }).then(
          async (r) => [r.status, await r.text()] as const,
          (e: unknown) => [0, String(e)] as const,
        );
        reads++;
        if (answer[0] !== 200 || answer[1].includes('"errors"')) failures.push(answer[1].slice(0, 300));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    let running = true;
    let committed = 0;
    const workload = (async () => {
      for (let i = 0; running; i++) {
        await db.query(`BEGIN;
          INSERT INTO orders VALUES (${30000 + i}, ${i % 200}, 'paid', ${(i % 70) + 0.25}, now());
          INSERT INTO order_items VALUES (${30000 + i}, 1, ${1 + (i % 60)}, 2, 3.25);
          UPDATE orders SET customer_id = ${(i * 7) % 200}, amount = amount + 1, status = 'shipped' WHERE id = ${1 + ((i * 13) % 20000)};
          UPDATE customers SET name = 'renamed ${i}' WHERE id = ${(i * 11) % 200};
          DELETE FROM order_items WHERE line_no = ${1 + ((i * 17) % 40000)};
          DELETE FROM orders WHERE id = ${1 + ((i * 29) % 20000)};
          COMMIT`);
        committed++;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    await new Promise((r) => setTimeout(r, 1000));

    // The rolling deploy: the old ingest process stops, the new config's starts and backfills.
    ingest.process.kill('SIGTERM');
    await ingest.exited;
    ingest = await startChildService(newConfig, {}, ['--ingest-only']);
    children.push(ingest);
    // Killed in the middle of the backfill, started again: it backfills again from scratch.
    const deadline = Date.now() + 60_000;
    while (!ingest.output().includes('backfilling views while the others stay live') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(ingest.output()).toContain('"productSales":"a new view"');
    expect(ingest.output()).toContain('"ordersByStatus":"its definition changed"');
    expect(ingest.output()).toContain(
      `the view definitions changed: new productSales, ordersWithCustomer, topCustomers; changed ordersByStatus; removed ${REMOVED}; 11 unchanged`,
    );
    await new Promise((r) => setTimeout(r, 300));
    ingest.process.kill('SIGKILL');
    await ingest.exited;
    ingest = await startChildService(newConfig, {}, ['--ingest-only']);
    children.push(ingest);
    const restarted = ingest;
    let backfillingAt = 0;
    while (
      !restarted.output().includes('backfilling views while the others stay live') &&
      Date.now() < deadline + 60_000
    )
      await new Promise((r) => setTimeout(r, 5));
    backfillingAt = Date.now();
    expect(restarted.output()).toContain('"servedUntilSwapped":["ordersByStatus"]');
    await waitFor(ingest.url, '/ready');
    await waitLive([...ADDED, 'ordersByStatus']);
    const meta = await redis.sendCommand<string[]>(['HGETALL', metaKey(keyPrefix(name))]);
    expect(
      meta.filter((f) => f.startsWith('next:')),
      'a swap left its next: field',
    ).toEqual([]);
    expect(ingest.output()).not.toContain('building views from a fresh snapshot');
    expect((await statuses())[REMOVED]).toBeUndefined();
    expect(await redis.sendCommand<string[]>(['KEYS', `${keyPrefix(name)}:[vs]:${REMOVED}~*`])).toEqual([]);
    expect(await redis.sendCommand<number>(['EXISTS', changelogKey(keyPrefix(name), REMOVED)])).toBe(0);
    while (!ingest.output().includes('swapped: the changed views') && Date.now() < deadline + 120_000)
      await new Promise((r) => setTimeout(r, 20));
    expect(ingest.output()).toContain('backfill done: the views are live');
    await new Promise((r) => setTimeout(r, 1000));
    running = false;
    await workload;
    expect(committed).toBeGreaterThan(50);
    await waitForSync(db, redis, name, name);
    reading = false;
    await reader;
    await changedReader;
    await changedClient.dispose();

    // The changed view served its old definition, kept up to date, while the new one was built.
    expect(ingest.output()).toContain(
      'swapped: the changed views serve their new definitions; the old ones are deleted',
    );
    expect(changedFailures, 'reads of the changed view on the old instance failed before the swap').toEqual(
      [],
    );
    expect(swappedAt, 'the old instance never noticed the swap').toBeGreaterThan(0);
    const during = changedReads.filter((r) => r.at > backfillingAt && r.at < swappedAt);
    expect(during.length, 'no read of the changed view while its new definition was built').toBeGreaterThan(
      0,
    );
    expect(
      new Set(changedReads.map((r) => r.orders)).size,
      'the old definition did not follow the workload',
    ).toBeGreaterThan(1);
    expect(changedOps.filter((op) => op !== 'RESET').length).toBeGreaterThan(0);
    expect(changedOps.at(-1)).toBe('RESET');
    // Only the new definition's keys are left.
    const storages = new Set(
      (await redis.sendCommand<string[]>(['KEYS', `${keyPrefix(name)}:[vs]:ordersByStatus~*`])).map(
        (k) => k.split(':')[3]!.split('/')[0],
      ),
    );

    expect(failures, `reads of unchanged views failed (of ${reads})`).toEqual([]);
    expect(reads).toBeGreaterThan(50);
    expect(subscriptionError).toBeNull();
    expect(
      ops.filter((op) => op === 'RESET'),
      'the subscriber of an unchanged view saw a reset',
    ).toEqual([]);
    const registry = createRegistry(await loadConfig(newConfig));
    expect([...storages]).toEqual([registry.byName.get('ordersByStatus')!.storage]);
    const revenue = registry.byName.get('revenueByCustomer')!;
    const byCustomer = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      Number(a['customerId']) - Number(b['customerId']);
    const expected = (await readViewOverSql(db, revenue)).sort(byCustomer);
    const until = Date.now() + 30_000;
    while (
      JSON.stringify([...held.values()].sort(byCustomer)) !== JSON.stringify(expected) &&
      Date.now() < until
    )
      await new Promise((r) => setTimeout(r, 50));
    expect([...held.values()].sort(byCustomer)).toEqual(expected);
    await client.dispose();

    // The new config's API: every view, added and changed ones included, equals its SQL.
    const newApi = await startChildService(newConfig, {}, ['--api-only']);
    children.push(newApi);
    await waitFor(newApi.url, '/ready');
    await expectViewsEqualSql(newApi.url, db, registry);
    const changed = await graphql<{ ordersByStatusList: { nodes: { smallest: string | null }[] } }>(
      newApi.url,
      '{ ordersByStatusList { nodes { status smallest } } }',
    );
    expect(changed.ordersByStatusList.nodes.length).toBeGreaterThan(0);

    // `cdc-views rebuild`: two views built again while the others serve.
    const rebuilt = spawn(
      process.execPath,
      [CLI, 'rebuild', 'salesByCategory', 'topCustomers', '--wait', '--config', newConfig],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let said = '';
    rebuilt.stdout.on('data', (c: Buffer) => (said += c.toString()));
    rebuilt.stderr.on('data', (c: Buffer) => (said += c.toString()));
    await db.query(`UPDATE order_items SET quantity = quantity + 1 WHERE line_no % 97 = 0`);
    const code = await new Promise<number | null>((resolve) => rebuilt.once('exit', resolve));
    expect(code, said).toBe(0);
    expect(said).toContain('Asked to rebuild salesByCategory, topCustomers');
    expect(said).toContain('Rebuilt: salesByCategory, topCustomers are live.');
    expect(ingest.output()).toMatch(/"salesByCategory":"asked for by cdc-views rebuild at [^"]+"/);
    await waitForSync(db, redis, name, name);
    await expectViewsEqualSql(newApi.url, db, registry);
  }, 300_000);
});
