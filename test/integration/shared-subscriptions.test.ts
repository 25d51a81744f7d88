/**
 * Subscribers that would receive the same payload share one execution and one serialization of
 * each change (api/shared-subscriptions.ts) — and each still receives exactly its own: identical
 * subscribers identical payloads over WebSocket and SSE, other selections, variables, roles and
 * tenants theirs, transactionEnd where their transaction ends. `cdc_views_subscription_payloads_total`
 * counts the payloads made: one per change and group, however many subscribers the group has.
 */
import { createClient, type Client } from 'graphql-ws';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../views/config.ts';
import { shopTestConfig, startFixture, type ServiceFixture } from '../support/shop.ts';

const SECRET = 'a-test-secret-of-at-least-thirty-two-bytes';

function sharedConfig(databaseUrl: string, redisUrl: string, name: string): Config {
  return {
    ...shopTestConfig(databaseUrl, redisUrl, name),
    api: {
      auth: { jwt: { secret: SECRET } },
      permissions: {
        revenueByCustomer: { customer: { filter: { customerId: { claim: 'customerId' } } }, analyst: {} },
        largePaidOrders: { customer: { filter: { customerId: { claim: 'customerId' } } } },
      },
    },
  } as Config;
}

function sign(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
}

type Payload = Record<string, unknown>;

describe('shared subscription payloads', () => {
  let shop: ServiceFixture;
  const clients: Client[] = [];
  const streams: AbortController[] = [];
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    shop = await startFixture('shared', { config: sharedConfig });
  });

  /** Every subscription of the test closed, and released by the service. */
  async function closeAll(): Promise<void> {
    for (const stream of streams.splice(0)) stream.abort();
    for (const socket of sockets.splice(0)) socket.close();
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
    await until(async () => (await metric('cdc_views_subscriptions_active')) === 0, 'the subscriptions to be released');
  }

  afterEach(() => closeAll());
  afterAll(() => shop?.close());

  async function metric(name: string): Promise<number> {
    const text = await (await fetch(shop.service.api.metricsUrl)).text();
    return text
      .split('\n')
      .filter((line) => line.startsWith(name))
      .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
  }

  function connection(token: string): Client {
    const client = createClient({ url: shop.service.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { authorization: `Bearer ${token}` } });
    clients.push(client);
    return client;
  }

  /** The payloads (`data`) one subscription receives over WebSocket. */
  function overWebSocket(client: Client, query: string, variables: Record<string, unknown> = {}): Payload[] {
    const payloads: Payload[] = [];
    client.subscribe({ query, variables }, { next: (payload) => payloads.push(payload.data ?? { errors: payload.errors }), error: (e) => payloads.push({ error: e }), complete: () => undefined });
    return payloads;
  }

  /** The messages of one subscription with this id as the socket carries them (graphql-transport-ws). */
  function overRawSocket(token: string, id: string, query: string): string[] {
    const socket = new WebSocket(shop.service.url.replace('http', 'ws'), 'graphql-transport-ws');
    sockets.push(socket);
    const messages: string[] = [];
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } })));
    socket.on('message', (data) => {
      const message = String(data);
      if (message.includes('"connection_ack"')) socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query } }));
      else messages.push(message);
    });
    return messages;
  }

  /** The payloads (`data`) one subscription receives over SSE. */
  function overSse(token: string, query: string): Payload[] {
    const payloads: Payload[] = [];
    const abort = new AbortController();
    streams.push(abort);
    void (async () => {
      const response = await fetch(shop.service.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query }),
        signal: abort.signal,
      });
      const decoder = new TextDecoder();
      let text = '';
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true });
        for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
          const data = text.slice(0, end).split('\n').find((line) => line.startsWith('data: '));
          text = text.slice(end + 2);
          if (data) payloads.push((JSON.parse(data.slice(6)) as { data: Payload }).data);
        }
      }
    })().catch(() => undefined);
    return payloads;
  }

  /** Everything `check` waits for received, and a moment for anything more (which would fail the test). */
  async function received(check: () => boolean, what: string): Promise<void> {
    await until(check, what);
    await new Promise((r) => setTimeout(r, 300));
  }

  async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
    for (const deadline = Date.now() + 15_000; !(await check()); await new Promise((r) => setTimeout(r, 25))) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    }
  }

  /** Customers 51 and 52 (role customer, one group) subscribe to `query` twice each, over WebSocket and SSE. */
  async function tenantsSubscribing(query: string): Promise<[Payload[][], Payload[][]]> {
    const [tenant51, tenant52] = [await sign({ role: 'customer', customerId: 51 }), await sign({ role: 'customer', customerId: 52 })];
    return [
      [overWebSocket(connection(tenant51), query), overSse(tenant51, query)],
      [overWebSocket(connection(tenant52), query), overSse(tenant52, query)],
    ];
  }

  /** Once the hub holds `attached` subscriptions, the transactions, one at a time. */
  async function commit(attached: number, transactions: readonly string[]): Promise<void> {
    await until(async () => (await metric('cdc_views_subscriptions_active')) === attached, 'the subscriptions');
    await new Promise((r) => setTimeout(r, 300));
    for (const sql of transactions) {
      await shop.db.query(sql);
      await shop.sync();
    }
  }

  it('identical subscribers get identical payloads, made once per change for all of them; other selections and variables get their own', async () => {
    const analyst = await sign({ role: 'analyst' });
    const [one, two] = [connection(analyst), connection(analyst)];
    const same = 'subscription { revenueByCustomerChanges { version op key { customerId } row { orders revenue } transactionEnd } }';
    const identical = [...Array.from({ length: 10 }, (_, i) => overWebSocket(i % 2 ? one : two, same)), overSse(analyst, same), overSse(analyst, same)];
    const raw = overRawSocket(analyst, 'raw "1"', same);
    const previousOnly = overWebSocket(one, 'subscription { revenueByCustomerChanges { op previous { revenue } } }');
    const aliased = overWebSocket(two, 'subscription { c: revenueByCustomerChanges { op r: row { orders } } }');
    const keyed = 'subscription One($id: Int) { revenueByCustomerChanges(customerId: $id) { op key { customerId } row { revenue } transactionEnd } }';
    const of41 = [overWebSocket(one, keyed, { id: 41 }), overWebSocket(two, keyed, { id: 41 }), overWebSocket(two, keyed, { id: 41 })];
    const of42 = overWebSocket(one, keyed, { id: 42 });
    const optional = 'subscription Optional($withPrevious: Boolean!) { revenueByCustomerChanges { op previous @include(if: $withPrevious) { revenue } } }';
    const [withPrevious, withoutPrevious] = [overWebSocket(one, optional, { withPrevious: true }), overWebSocket(two, optional, { withPrevious: false })];
    const before = await metric('cdc_views_subscription_payloads_total');
    await commit(21, [
      `INSERT INTO orders VALUES (4101, 41, 'paid', 10.00, now())`,
      `BEGIN; UPDATE orders SET amount = 15.00 WHERE id = 4101; INSERT INTO orders VALUES (4201, 42, 'paid', 7.25, now()); COMMIT`,
      `INSERT INTO orders VALUES (4301, 43, 'paid', 1.00, now())`,
    ]);
    await received(() => [...identical, raw, previousOnly, aliased, withPrevious, withoutPrevious].every((p) => p.length >= 4) && of41.every((p) => p.length >= 2) && of42.length >= 1, 'the changes');

    const change = (op: string, customerId: number, orders: string, revenue: string, transactionEnd: boolean) => ({
      revenueByCustomerChanges: { version: expect.stringMatching(/^\d+-\d+$/), op, key: { customerId }, row: { orders, revenue }, transactionEnd },
    });
    expect(identical[0]).toEqual([change('INSERT', 41, '1', '10.00', true), change('UPDATE', 41, '1', '15.00', false), change('INSERT', 42, '1', '7.25', true), change('INSERT', 43, '1', '1.00', true)]);
    for (const payloads of identical) expect(payloads).toEqual(identical[0]);
    // Sent around the shared text, each message is the very bytes graphql-ws writes for it.
    expect(raw).toEqual(identical[0]!.map((data) => JSON.stringify({ id: 'raw "1"', type: 'next', payload: { data } })));
    expect(previousOnly).toEqual([
      { revenueByCustomerChanges: { op: 'INSERT', previous: null } },
      { revenueByCustomerChanges: { op: 'UPDATE', previous: { revenue: '10.00' } } },
      { revenueByCustomerChanges: { op: 'INSERT', previous: null } },
      { revenueByCustomerChanges: { op: 'INSERT', previous: null } },
    ]);
    expect(withPrevious).toEqual(previousOnly);
    expect(withoutPrevious.map((p) => p['revenueByCustomerChanges'])).toEqual([{ op: 'INSERT' }, { op: 'UPDATE' }, { op: 'INSERT' }, { op: 'INSERT' }]);
    expect(aliased.map((p) => p['c'])).toEqual([
      { op: 'INSERT', r: { orders: '1' } },
      { op: 'UPDATE', r: { orders: '1' } },
      { op: 'INSERT', r: { orders: '1' } },
      { op: 'INSERT', r: { orders: '1' } },
    ]);
    // Customer 41 alone: its update ends what it sees of the transaction.
    for (const payloads of of41) {
      expect(payloads).toEqual([
        { revenueByCustomerChanges: { op: 'INSERT', key: { customerId: 41 }, row: { revenue: '10.00' }, transactionEnd: true } },
        { revenueByCustomerChanges: { op: 'UPDATE', key: { customerId: 41 }, row: { revenue: '15.00' }, transactionEnd: true } },
      ]);
    }
    expect(of42).toEqual([{ revenueByCustomerChanges: { op: 'INSERT', key: { customerId: 42 }, row: { revenue: '7.25' }, transactionEnd: true } }]);
    // Made once per change and group: 4 each for the thirteen identical, the previous-only, the aliased
    // and the two optional subscriptions, 2 for the three of customer 41, 1 for customer 42 — 23 for 62 sent.
    expect((await metric('cdc_views_subscription_payloads_total')) - before).toBe(23);
  });

  it('subscribers of one group who see other rows (tenants) get their own payloads; another role its own', async () => {
    const same = 'subscription { revenueByCustomerChanges { op key { customerId } row { revenue } transactionEnd } }';
    const [of51, of52] = await tenantsSubscribing(same);
    const everyone = overWebSocket(connection(await sign({ role: 'analyst' })), same);
    const before = await metric('cdc_views_subscription_payloads_total');
    await commit(5, [
      `INSERT INTO orders VALUES (5101, 51, 'paid', 10.00, now())`,
      `BEGIN; UPDATE orders SET amount = 12.50 WHERE id = 5101; INSERT INTO orders VALUES (5201, 52, 'paid', 3.00, now()); COMMIT`,
    ]);
    await received(() => of51.every((p) => p.length >= 2) && of52.every((p) => p.length >= 1) && everyone.length >= 3, 'the changes');

    const change = (op: string, customerId: number, revenue: string, transactionEnd: boolean) => ({ revenueByCustomerChanges: { op, key: { customerId }, row: { revenue }, transactionEnd } });
    // Tenant 51 sees its update end the transaction (52's row is not its to see); 52 sees only its insert.
    for (const payloads of of51) expect(payloads).toEqual([change('INSERT', 51, '10.00', true), change('UPDATE', 51, '12.50', true)]);
    for (const payloads of of52) expect(payloads).toEqual([change('INSERT', 52, '3.00', true)]);
    expect(everyone).toEqual([change('INSERT', 51, '10.00', true), change('UPDATE', 51, '12.50', false), change('INSERT', 52, '3.00', true)]);
    // The tenants' group made each change it saw once (3), the analyst's its own (3).
    expect((await metric('cdc_views_subscription_payloads_total')) - before).toBe(6);
  });

  it('a row moving between tenants of one group reaches each as its own change of the same version', async () => {
    const same = 'subscription { largePaidOrdersChanges { version op row { id customerId } previous { id customerId } } }';
    const [of51, of52] = await tenantsSubscribing(same);
    const before = await metric('cdc_views_subscription_payloads_total');
    await commit(4, [`INSERT INTO orders VALUES (5102, 51, 'paid', 500.00, now())`, `UPDATE orders SET customer_id = 52 WHERE id = 5102`]);
    await received(() => of51.every((p) => p.length >= 2) && of52.every((p) => p.length >= 1), 'the changes');

    const changes = (payloads: Payload[]) => payloads.map((p) => p['largePaidOrdersChanges'] as { version: string; op: string });
    for (const payloads of of51) {
      expect(changes(payloads)).toEqual([
        { version: expect.any(String), op: 'INSERT', row: { id: 5102, customerId: 51 }, previous: null },
        { version: expect.any(String), op: 'DELETE', row: null, previous: { id: 5102, customerId: 51 } },
      ]);
    }
    for (const payloads of of52) expect(changes(payloads)).toEqual([{ version: expect.any(String), op: 'INSERT', row: { id: 5102, customerId: 52 }, previous: null }]);
    expect(changes(of52[0]!)[0]!.version).toBe(changes(of51[0]!)[1]!.version);
    // One payload for 51's insert, and one per tenant for the move.
    expect((await metric('cdc_views_subscription_payloads_total')) - before).toBe(3);
  });
});
