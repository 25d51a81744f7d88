/**
 * Many API instances beside one ingest process: `--ingest-only` keeps the views (no GraphQL),
 * any number of `--api-only` processes serve them from Redis. A subscriber whose instance is
 * SIGKILLed under a live workload reconnects to another with `since` and ends up with exactly the
 * rows SQL has — nothing lost, nothing doubled.
 */
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createRegistry } from '../../views/registry.ts';
import { startChildService, writeShopConfig, type ChildService } from '../support/child-service.ts';
import { connect, createDatabase, graphql, readViewOverSql, shopTestConfig, uniqueName } from '../support/shop.ts';
import type pg from 'pg';

interface Change {
  version: string;
  op: string;
  key: { customerId: number } | null;
  row: Record<string, unknown> | null;
  transactionEnd: boolean;
}

async function waitReady(url: string, timeoutMs = 60_000): Promise<void> {
  const ready = url.replace(/\/graphql$/, '/ready');
  const deadline = Date.now() + timeoutMs;
  while ((await fetch(ready).then((r) => r.status, () => 0)) !== 200) {
    if (Date.now() > deadline) throw new Error(`${ready} did not become ready: ${await fetch(ready).then((r) => r.text(), String)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('one ingest process, many API instances', () => {
  const name = uniqueName('inst');
  let db: pg.Client;
  let configFile: string;
  const children: ChildService[] = [];

  beforeAll(async () => {
    const databaseUrl = await createDatabase(inject('databaseUrl'), name);
    db = await connect(databaseUrl);
    await db.query(`INSERT INTO orders SELECT g, g % 40, 'paid', g % 90 + 0.5, now() FROM generate_series(1, 400) g`);
    configFile = writeShopConfig(databaseUrl, inject('redisUrl'), name);
  });

  afterAll(async () => {
    for (const c of children) c.process.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await db?.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
    await db?.end();
    rmSync(dirname(configFile), { recursive: true, force: true });
  });

  it('an API instance killed under a live workload: its subscriber resumes on another with since and holds exactly what SQL has', async () => {
    const ingest = await startChildService(configFile, {}, ['--ingest-only']);
    const apiA = await startChildService(configFile, {}, ['--api-only']);
    const apiB = await startChildService(configFile, {}, ['--api-only']);
    children.push(ingest, apiA, apiB);
    await Promise.all([ingest.url, apiA.url, apiB.url].map((u) => waitReady(u)));
    // The ingest process serves no GraphQL; the API processes hold no lease and no slot.
    expect((await fetch(ingest.url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"query":"{ __typename }"}' })).status).toBe(404);
    expect(apiA.output()).not.toContain('waiting for the lease');
    const registry = createRegistry(shopTestConfig('postgres://unused', 'redis://unused', name));
    const view = registry.views.find((v) => v.name === 'revenueByCustomer')!;

    // A client that keeps the view from a snapshot and its changes, and resumes where it was.
    const held = new Map<number, Record<string, unknown>>();
    let last: string | null = null;
    let events = 0;
    const follow = (url: string) => {
      const client = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
      const args = last ? `since: "${last}"` : 'snapshot: true';
      const ended = new Promise<void>((resolve) =>
        client.subscribe(
          { query: `subscription { revenueByCustomerChanges(${args}) { version op key { customerId } row { customerId orders revenue averageOrder largestOrder smallestOrder } transactionEnd } }` },
          {
            next: ({ data }) => {
              const change = (data as { revenueByCustomerChanges: Change }).revenueByCustomerChanges;
              events++;
              if (change.op === 'RESET') held.clear();
              else if (change.op === 'DELETE') held.delete(change.key!.customerId);
              else held.set(change.key!.customerId, change.row!);
              // Resume only after a whole transaction.
              if (change.transactionEnd) last = change.version;
            },
            error: () => resolve(),
            complete: () => resolve(),
          },
        ),
      );
      return { client, ended };
    };
    const first = follow(apiA.url);

    let running = true;
    let committed = 0;
    const workload = (async () => {
      for (let i = 0; running; i++) {
        await db.query(`BEGIN;
          INSERT INTO orders VALUES (${1000 + i}, ${i % 40}, 'paid', ${(i % 70) + 0.25}, now());
          UPDATE orders SET customer_id = ${(i * 7) % 40}, amount = amount + 1 WHERE id = ${1 + ((i * 13) % 400)};
          DELETE FROM orders WHERE id = ${1 + ((i * 29) % 400)};
          COMMIT`);
        committed++;
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));
    const before = events;
    apiA.process.kill('SIGKILL');
    await apiA.exited;
    await first.ended;
    expect(before, 'changes received from the first instance').toBeGreaterThan(0);
    expect(last).not.toBeNull();
    const second = follow(apiB.url);
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await workload;
    expect(committed).toBeGreaterThan(20);

    // Once the views hold every commit, the client holds exactly the view's SQL.
    const byCustomer = (a: Record<string, unknown>, b: Record<string, unknown>) => Number(a['customerId']) - Number(b['customerId']);
    const expected = (await readViewOverSql(db, view)).sort(byCustomer);
    const deadline = Date.now() + 30_000;
    const actual = () => [...held.values()].sort(byCustomer);
    while (JSON.stringify(actual()) !== JSON.stringify(expected) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(actual()).toEqual(expected);
    // And a query on the surviving instance agrees.
    const page = await graphql<{ revenueByCustomerList: { nodes: unknown[] } }>(
      apiB.url,
      '{ revenueByCustomerList(first: 1000) { nodes { customerId orders revenue averageOrder largestOrder smallestOrder } } }',
    );
    expect(page.revenueByCustomerList.nodes).toEqual(expected);
    await second.client.dispose();
  }, 120_000);
});
