/**
 * Subscriptions push each change after COMMIT, over graphql-ws (WebSocket) and over SSE, carry a
 * version, resume with `since`, and can start from a snapshot.
 */
import { getEventListeners } from 'node:events';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangelogHub } from '../../api/changelog-hub.ts';
import { encodeRowKey } from '../../core/encoding.ts';
import { FULL_ACCESS } from '../../schema/permissions.ts';
import { keyPrefix } from '../../views/store/keys.ts';
import { graphql, startShop, type ServiceFixture } from '../support/shop.ts';

interface Change {
  version: string;
  op: string;
  key: { customerId: number };
  row: { orders: string; revenue: string | null } | null;
  previous: { orders: string; revenue: string | null } | null;
}

/** Collects the events of one subscription; `next(n)` waits for the n-th. */
class Events<T> {
  readonly items: T[] = [];
  private waiters: (() => void)[] = [];
  push(item: T): void {
    this.items.push(item);
    for (const w of this.waiters.splice(0)) w();
  }
  async next(count: number, timeoutMs = 10_000): Promise<T[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.items.length < count) {
      if (Date.now() > deadline) throw new Error(`Expected ${count} events, got ${this.items.length}: ${JSON.stringify(this.items)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
    return this.items.slice(0, count);
  }
}

const CHANGE_FIELDS = 'version op key { customerId } row { orders revenue } previous { orders revenue }';

describe('subscriptions', () => {
  let shop: ServiceFixture;
  let ws: Client;

  beforeAll(async () => {
    shop = await startShop('subs', `INSERT INTO orders VALUES (1, 7, 'paid', 10.00, now())`);
    ws = createClient({ url: shop.service.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
  });

  afterAll(async () => {
    await ws?.dispose();
    await shop?.close();
  });

  function subscribeWs(query: string): { events: Events<Change>; stop: () => void } {
    const events = new Events<Change>();
    const stop = ws.subscribe(
      { query },
      {
        next: ({ data, errors }) => {
          if (errors) throw new Error(JSON.stringify(errors));
          events.push(Object.values(data as Record<string, Change>)[0]!);
        },
        error: (error) => {
          throw error instanceof Error ? error : new Error(JSON.stringify(error));
        },
        complete: () => undefined,
      },
    );
    return { events, stop };
  }

  it('a graphql-ws client receives the change after COMMIT, with a version and the previous row', async () => {
    const { events, stop } = subscribeWs(`subscription { revenueByCustomerChanges(customerId: 7) { ${CHANGE_FIELDS} } }`);
    await new Promise((r) => setTimeout(r, 300)); // let the subscription attach
    await shop.db.query(`BEGIN; INSERT INTO orders VALUES (2, 7, 'paid', 5.50, now()); INSERT INTO orders VALUES (3, 8, 'paid', 1.00, now()); COMMIT`);
    const [first] = await events.next(1);
    expect(first).toMatchObject({ op: 'UPDATE', key: { customerId: 7 }, row: { orders: '2', revenue: '15.50' }, previous: { orders: '1', revenue: '10.00' } });
    expect(first!.version).toMatch(/^\d+-\d+$/);

    await shop.db.query(`DELETE FROM orders WHERE customer_id = 7`);
    const [, second] = await events.next(2);
    expect(second).toMatchObject({ op: 'DELETE', key: { customerId: 7 }, row: null, previous: { orders: '2', revenue: '15.50' } });
    expect(second!.version > first!.version).toBe(true);
    // The other customer's change was filtered out by the key argument.
    expect(events.items.every((e) => e.key.customerId === 7)).toBe(true);
    stop();
  });

  it('an SSE client receives the change after COMMIT', async () => {
    const controller = new AbortController();
    const response = await fetch(shop.service.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: `subscription { revenueByCustomerChanges(customerId: 9) { ${CHANGE_FIELDS} } }` }),
      signal: controller.signal,
    });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const reader = response.body!.getReader();
    await new Promise((r) => setTimeout(r, 300));
    await shop.db.query(`INSERT INTO orders VALUES (10, 9, 'paid', 99.99, now())`);
    let text = '';
    const deadline = Date.now() + 10_000;
    while (!text.includes('"revenueByCustomerChanges"') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    const data = text.split('\n').find((l) => l.startsWith('data:') && l.includes('revenueByCustomerChanges'));
    const event = JSON.parse(data!.slice(5)).data.revenueByCustomerChanges as Change;
    expect(event).toMatchObject({ op: 'INSERT', key: { customerId: 9 }, row: { orders: '1', revenue: '99.99' }, previous: null });
  });

  it('resumes after a version read from a page, missing nothing in between', async () => {
    const page = await graphql<{ revenueByCustomerList: { version: string } }>(shop.service.url, `{ revenueByCustomerList(first: 1) { version } }`);
    await shop.db.query(`INSERT INTO orders VALUES (20, 11, 'paid', 1.00, now())`);
    await shop.db.query(`UPDATE orders SET amount = 2.00 WHERE id = 20`);
    await shop.sync();
    const { events, stop } = subscribeWs(`subscription { revenueByCustomerChanges(since: "${page.revenueByCustomerList.version}") { ${CHANGE_FIELDS} } }`);
    const [a, b] = await events.next(2);
    expect(a).toMatchObject({ op: 'INSERT', key: { customerId: 11 }, row: { revenue: '1.00' } });
    expect(b).toMatchObject({ op: 'UPDATE', key: { customerId: 11 }, row: { revenue: '2.00' }, previous: { revenue: '1.00' } });
    stop();
  });

  it('with snapshot: true, sends the current rows first, then every change after them', async () => {
    const { events, stop } = subscribeWs(`subscription { revenueByCustomerChanges(customerId: 11, snapshot: true) { ${CHANGE_FIELDS} } }`);
    const [snapshot] = await events.next(1);
    expect(snapshot).toMatchObject({ op: 'SNAPSHOT', key: { customerId: 11 }, row: { orders: '1', revenue: '2.00' }, previous: null });
    await shop.db.query(`UPDATE orders SET amount = 3.00 WHERE id = 20`);
    const [, change] = await events.next(2);
    expect(change).toMatchObject({ op: 'UPDATE', row: { revenue: '3.00' }, previous: { revenue: '2.00' } });
    expect(change!.version > snapshot!.version).toBe(true);
    stop();
  });

  it('a transaction reaches a subscriber whole: its changes are marked, the last with transactionEnd, live, resumed, keyed and in a snapshot', async () => {
    const fields = 'version op key { customerId } row { revenue } transactionEnd';
    type Marked = { version: string; op: string; key: { customerId: number }; row: { revenue: string } | null; transactionEnd: boolean };
    const page = await graphql<{ revenueByCustomerList: { version: string } }>(shop.service.url, `{ revenueByCustomerList(first: 1) { version } }`);
    const all = subscribeWs(`subscription { revenueByCustomerChanges { ${fields} } }`);
    const one = subscribeWs(`subscription { revenueByCustomerChanges(customerId: 31) { ${fields} } }`);
    await new Promise((r) => setTimeout(r, 300));
    // A transfer between two customers, then a change of one of them alone.
    await shop.db.query(`BEGIN; INSERT INTO orders VALUES (31, 31, 'paid', 10.00, now()), (32, 32, 'paid', 20.00, now()); COMMIT`);
    await shop.sync();
    await shop.db.query(`BEGIN; UPDATE orders SET amount = amount - 5 WHERE id = 31; UPDATE orders SET amount = amount + 5 WHERE id = 32; COMMIT`);
    await shop.sync();
    await shop.db.query(`UPDATE orders SET amount = 1.00 WHERE id = 32`);
    const expectMarks = (events: Marked[]) => {
      expect(events.map((e) => [e.key.customerId, e.transactionEnd])).toEqual([
        [31, false],
        [32, true],
        [31, false],
        [32, true],
        [32, true],
      ]);
      // The changes of one transaction share nothing a client must guess: applied up to each end, the
      // total is what the source held after that commit.
      expect(events[2]!.row!.revenue).toBe('5.00');
      expect(events[3]!.row!.revenue).toBe('25.00');
    };
    expectMarks((await all.events.next(5)) as unknown as Marked[]);
    // Customer 31 alone: each of its changes ends what it sees of its transaction.
    const mine = (await one.events.next(2)) as unknown as Marked[];
    expect(mine.map((e) => [e.key.customerId, e.transactionEnd])).toEqual([
      [31, true],
      [31, true],
    ]);
    // Resumed from the changelog: the same marks.
    const resumed = subscribeWs(`subscription { revenueByCustomerChanges(since: "${page.revenueByCustomerList.version}") { ${fields} } }`);
    expectMarks((await resumed.events.next(5)) as unknown as Marked[]);
    // A snapshot's last row ends it.
    const snap = subscribeWs(`subscription { revenueByCustomerChanges(snapshot: true) { ${fields} } }`);
    const rows = await graphql<{ revenueByCustomerList: { nodes: unknown[] } }>(shop.service.url, `{ revenueByCustomerList(first: 1000) { nodes { customerId } } }`);
    const snapshot = (await snap.events.next(rows.revenueByCustomerList.nodes.length)) as unknown as Marked[];
    expect(snapshot.map((e) => e.transactionEnd)).toEqual(snapshot.map((_, i) => i === snapshot.length - 1));
    for (const s of [all, one, resumed, snap]) s.stop();
  });

  it('a long-lived subscription holds one abort listener however many changes it waits for (the old leak made every wait add one)', async () => {
    const hub = new ChangelogHub({ registry: shop.registry, prefix: keyPrefix(shop.name), redis: shop.redis });
    await hub.start();
    const controller = new AbortController();
    const view = shop.registry.byName.get('revenueByCustomer')!;
    const stream = hub.changes(view, { since: null, snapshot: false, key: null, access: FULL_ACCESS, signal: controller.signal })[Symbol.asyncIterator]();
    try {
      for (let i = 0; i < 15; i++) {
        const next = stream.next();
        await new Promise((r) => setTimeout(r, 50)); // it waits for the change
        await shop.db.query(`INSERT INTO orders VALUES (${500 + i}, 77, 'paid', 1.00, now())`);
        expect((await next).value).toMatchObject({ op: i === 0 ? 'insert' : 'update' });
      }
      expect(getEventListeners(controller.signal, 'abort').length).toBeLessThanOrEqual(1);
    } finally {
      controller.abort();
      await stream.return?.(undefined);
      await hub.stop();
    }
  });

  it('a subscriber of one row that is not read for a while holds only its own changes: other rows’ transactions never fill its buffer (they queued an end each, until it was cut off as too slow)', async () => {
    const hub = new ChangelogHub({ registry: shop.registry, prefix: keyPrefix(shop.name), redis: shop.redis, maxBuffered: 5 });
    await hub.start();
    const controller = new AbortController();
    const view = shop.registry.byName.get('revenueByCustomer')!;
    const open = (key: string | null) => hub.changes(view, { since: null, snapshot: false, key, access: FULL_ACCESS, signal: controller.signal })[Symbol.asyncIterator]();
    const one = open(encodeRowKey(view.keyTypes, [88]));
    // The subscriber of the last row changed: once it has its change, `one` has been offered every change before it.
    const last = open(encodeRowKey(view.keyTypes, [899]));
    try {
      const first = one.next();
      const lastChange = last.next();
      await new Promise((r) => setTimeout(r, 300)); // both attach
      await shop.db.query(`INSERT INTO orders VALUES (880, 88, 'paid', 1.00, now())`);
      expect((await first).value).toMatchObject({ op: 'insert', transactionEnd: true });
      // Its next change waits unread while ten transactions change other rows (each applied on its own).
      await shop.db.query(`UPDATE orders SET amount = 2.00 WHERE id = 880`);
      for (let i = 0; i < 10; i++) {
        await shop.db.query(`INSERT INTO orders VALUES (${890 + i}, ${890 + i}, 'paid', 1.00, now())`);
        await shop.sync();
      }
      await lastChange;
      expect((await one.next()).value).toMatchObject({ op: 'update', row: { revenue: '2.00' }, transactionEnd: true });
    } finally {
      controller.abort();
      await Promise.all([one.return?.(undefined), last.return?.(undefined)]);
      await hub.stop();
    }
  });

  it('every subscriber gone and back (a reconnect storm): resumed with since from the kept recent history, nothing missed in between', async () => {
    const first = subscribeWs(`subscription { revenueByCustomerChanges { ${CHANGE_FIELDS} } }`);
    await new Promise((r) => setTimeout(r, 300));
    await shop.db.query(`INSERT INTO orders VALUES (600, 60, 'paid', 1.00, now())`);
    const [seen] = await first.events.next(1);
    first.stop();
    await new Promise((r) => setTimeout(r, 300)); // nobody follows the view now
    // Changes while nobody follows, then everyone resumes.
    await shop.db.query(`INSERT INTO orders VALUES (601, 61, 'paid', 2.00, now())`);
    await shop.db.query(`UPDATE orders SET amount = 3.00 WHERE id = 600`);
    await shop.sync();
    const resumed = subscribeWs(`subscription { revenueByCustomerChanges(since: "${seen!.version}") { ${CHANGE_FIELDS} } }`);
    await new Promise((r) => setTimeout(r, 300));
    await shop.db.query(`DELETE FROM orders WHERE id = 601`);
    const events = await resumed.events.next(3);
    expect(events.map((e) => [e.op, e.key.customerId, e.row?.revenue ?? null])).toEqual([
      ['INSERT', 61, '2.00'],
      ['UPDATE', 60, '3.00'],
      ['DELETE', 61, null],
    ]);
    resumed.stop();
  });
});
