/**
 * Authentication and permissions against the real service: JWTs (HS256, and a JWKS whose keys
 * rotate), per-role schemas (views and fields), row filters bound to claims on queries, pages and
 * every subscription event (WebSocket and SSE, live and resumed), largest pages, and tokens that
 * are stolen, forged or expire — a tenant never sees another tenant's row, delete or previous image.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient, type Client } from 'graphql-ws';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../views/config.ts';
import { keyPrefix } from '../../views/store/keys.ts';
import { readPage } from '../../views/store/read.ts';
import { readViewOverSql, shopTestConfig, startFixture, type ServiceFixture } from '../support/shop.ts';

const SECRET = 'a-test-secret-of-at-least-thirty-two-bytes';

function permissionsConfig(databaseUrl: string, redisUrl: string, name: string): Config {
  const base = shopTestConfig(databaseUrl, redisUrl, name);
  return {
    ...base,
    api: {
      auth: { jwt: { secret: SECRET }, anonymousRole: 'public' },
      permissions: {
        largePaidOrders: { customer: { filter: { customerId: { claim: 'customerId' } }, fields: ['id', 'customerId', 'amount'], maxPageSize: 50 } },
        revenueByCustomer: { customer: { filter: { customerId: { claim: 'customerId' } } }, analyst: {} },
        ordersByStatus: { public: { fields: ['status', 'orders'] }, analyst: {} },
      },
    },
  } as Config;
}

async function sign(claims: Record<string, unknown>, options: { secret?: string; expiresIn?: string | number } = {}): Promise<string> {
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt();
  jwt.setExpirationTime(options.expiresIn ?? '1h');
  return jwt.sign(new TextEncoder().encode(options.secret ?? SECRET));
}

interface GraphqlReply<T> {
  status: number;
  data?: T;
  errors?: { message: string; extensions?: { code?: string } }[];
}

async function query<T = Record<string, unknown>>(url: string, token: string | null, text: string): Promise<GraphqlReply<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query: text }),
  });
  return { status: response.status, ...((await response.json()) as Omit<GraphqlReply<T>, 'status'>) };
}

interface Row {
  id: number;
  customerId: number;
  amount: string;
}
interface Change {
  version: string;
  op: string;
  row: Row | null;
  previous: Row | null;
}
const CHANGE = 'version op row { id customerId amount } previous { id customerId amount }';

/** A graphql-ws client with a token; events and the close code are recorded. */
function wsClient(url: string, token: string | null): { client: Client; closed: Promise<{ code: number; reason: string }> } {
  let onClosed: (e: { code: number; reason: string }) => void = () => undefined;
  const closed = new Promise<{ code: number; reason: string }>((r) => (onClosed = r));
  const client = createClient({
    url: url.replace('http', 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    on: { closed: (event) => onClosed({ code: (event as CloseEvent).code, reason: (event as CloseEvent).reason }) },
    onNonLazyError: () => undefined,
  });
  return { client, closed };
}

function subscribe(client: Client, text: string): { events: Change[]; errors: unknown[]; done: Promise<void> } {
  const events: Change[] = [];
  const errors: unknown[] = [];
  const done = new Promise<void>((resolve) => {
    client.subscribe(
      { query: text },
      {
        next: ({ data, errors: e }) => {
          if (e) errors.push(...e);
          if (data) events.push(Object.values(data)[0] as Change);
        },
        error: (error) => {
          errors.push(error);
          resolve();
        },
        complete: resolve,
      },
    );
  });
  return { events, errors, done };
}

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('authentication and permissions', () => {
  let shop: ServiceFixture;
  let url: string;
  const clients: Client[] = [];

  beforeAll(async () => {
    shop = await startFixture('perm', {
      config: permissionsConfig,
      seed: `INSERT INTO orders SELECT g, 1 + g % 3, CASE WHEN g % 5 = 0 THEN 'new' ELSE 'paid' END, 50 + g * 3, now() FROM generate_series(1, 120) g`,
    });
    url = shop.service.url;
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.dispose()));
    await shop?.close();
  });

  const view = (name: string) => shop.registry.views.find((v) => v.name === name)!;
  const sqlRowsOf = async (name: string, customerId: number) =>
    (await readViewOverSql(shop.db, view(name))).filter((r) => r['customerId'] === customerId);

  it('refuses forged, foreign, malformed and expired tokens with 401 and the reason; anonymous callers get only the public role', async () => {
    const forged = `${(await sign({ role: 'analyst' })).slice(0, -4)}AAAA`;
    const foreign = await sign({ role: 'analyst' }, { secret: 'another-secret-of-at-least-thirty-two-bytes' });
    const expired = await sign({ role: 'analyst' }, { expiresIn: Math.floor(Date.now() / 1000) - 60 });
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"role":"analyst"}').toString('base64url')}.`;
    for (const token of [forged, foreign, unsigned]) {
      const reply = await query(url, token, '{ ordersByStatus(status: "paid") { total } }');
      expect(reply.status).toBe(401);
      expect(reply.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect(reply.data).toBeUndefined();
    }
    const late = await query(url, expired, '{ ordersByStatus(status: "paid") { total } }');
    expect(late.status).toBe(401);
    expect(late.errors?.[0]).toMatchObject({ message: 'The token expired', extensions: { code: 'TOKEN_EXPIRED' } });
    const badHeader = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Basic abc' }, body: '{"query":"{ __typename }"}' });
    expect(badHeader.status).toBe(401);
    expect(badHeader.headers.get('www-authenticate')).toBe('Bearer');

    // A role with no view at all is refused at the door.
    const stranger = await query(url, await sign({ role: 'stranger' }), '{ __typename }');
    expect(stranger.status).toBe(403);
    expect(stranger.errors?.[0]?.message).toBe('Role stranger may read no view');

    // Anonymous: the public role sees ordersByStatus's status and orders, nothing else.
    const anonymous = await query<{ ordersByStatus: { status: string; orders: string } }>(url, null, '{ ordersByStatus(status: "paid") { status orders } }');
    expect(anonymous.status).toBe(200);
    const [paid] = (await readViewOverSql(shop.db, view('ordersByStatus'))).filter((r) => r['status'] === 'paid');
    expect(anonymous.data?.ordersByStatus).toEqual({ status: 'paid', orders: paid!['orders'] });
    const hidden = await query(url, null, '{ ordersByStatus(status: "paid") { total } }');
    expect(hidden.errors?.[0]?.message).toMatch(/Cannot query field "total" on type "OrdersByStatus"/);
    const otherView = await query(url, null, '{ revenueByCustomer(customerId: 1) { revenue } }');
    expect(otherView.errors?.[0]?.message).toMatch(/Cannot query field "revenueByCustomer"/);
    // The analyst reads the whole view.
    const analyst = await query<{ ordersByStatus: { total: string } }>(url, await sign({ role: 'analyst' }), '{ ordersByStatus(status: "paid") { total } }');
    expect(analyst.data?.ordersByStatus.total).toBe(paid!['total']);
  });

  it('a tenant reads only its own rows by key, in pages, and only its allowed fields; pages are capped by its role', async () => {
    const one = await sign({ role: 'customer', customerId: 1 });
    const mine = await query<{ revenueByCustomer: { revenue: string } | null }>(url, one, '{ revenueByCustomer(customerId: 1) { revenue } }');
    expect(mine.data?.revenueByCustomer?.revenue).toBe((await sqlRowsOf('revenueByCustomer', 1))[0]!['revenue']);
    const theirs = await query<{ revenueByCustomer: unknown }>(url, one, '{ revenueByCustomer(customerId: 2) { revenue } }');
    expect(theirs.data?.revenueByCustomer).toBeNull();

    // Every page, followed to the end, holds exactly the tenant's rows (SQL is the oracle).
    const seen: Row[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const reply: GraphqlReply<{ largePaidOrdersList: { nodes: Row[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }> = await query(
        url,
        one,
        `{ largePaidOrdersList(first: 7${after ? `, after: "${after}"` : ''}) { nodes { id customerId amount } pageInfo { hasNextPage endCursor } } }`,
      );
      expect(reply.errors).toBeUndefined();
      seen.push(...reply.data!.largePaidOrdersList.nodes);
      if (!reply.data!.largePaidOrdersList.pageInfo.hasNextPage) break;
      after = reply.data!.largePaidOrdersList.pageInfo.endCursor;
    }
    const expected = (await sqlRowsOf('largePaidOrders', 1)).map((r) => ({ id: r['id'], customerId: r['customerId'], amount: r['amount'] }));
    expect(expected.length).toBeGreaterThan(7);
    expect(seen).toEqual(expected);

    // A selective filter reads at most its budget of rows per page, and says where it stopped.
    const prefix = keyPrefix(shop.name);
    const budgeted: Row[] = [];
    let from: string | null = null;
    let reads = 0;
    for (; reads < 200; reads++) {
      const page = await readPage(shop.redis, prefix, view('largePaidOrders'), from, 50, { filter: [['customerId', 1]], budget: 4 });
      expect(page.rows.length).toBeLessThanOrEqual(4);
      budgeted.push(...page.rows.map(({ row }) => ({ id: row['id'], customerId: row['customerId'], amount: row['amount'] }) as Row));
      if (page.scannedTo === null) break;
      from = page.scannedTo;
    }
    expect(reads, 'pages of at most four rows examined').toBeGreaterThan(expected.length / 2);
    expect(budgeted).toEqual(expected);

    const tooLarge = await query(url, one, '{ largePaidOrdersList(first: 51) { nodes { id } } }');
    expect(tooLarge.errors?.[0]).toMatchObject({ message: 'Expected first to be between 0 and 50, but found 51', extensions: { code: 'BAD_USER_INPUT' } });
    const hiddenField = await query(url, one, '{ largePaidOrdersList(first: 5) { nodes { amountWithTax } } }');
    expect(hiddenField.errors?.[0]?.message).toMatch(/Cannot query field "amountWithTax"/);
    const garbageCursor = await query(url, one, '{ largePaidOrdersList(first: 5, after: "not-a-cursor") { nodes { id } } }');
    expect(garbageCursor.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    expect(garbageCursor.errors?.[0]?.message).toMatch(/^Expected after to be a cursor from a page of largePaidOrdersList/);

    // A token without the claim its filter needs reads nothing, and is told why.
    const noClaim = await query(url, await sign({ role: 'customer' }), '{ largePaidOrdersList(first: 5) { nodes { id } } }');
    expect(noClaim.errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' } });
    expect(noClaim.errors?.[0]?.message).toMatch(/claim 'customerId' of the token, which the token does not carry/);
  });

  it('every subscription event is judged against the subscriber’s claims: rows moving in and out are inserts and deletes, other tenants’ changes never arrive (WebSocket, SSE, and resumed with since)', async () => {
    const one = await sign({ role: 'customer', customerId: 1 });
    const ws = wsClient(url, one);
    clients.push(ws.client);
    const live = subscribe(ws.client, `subscription { largePaidOrdersChanges { ${CHANGE} } }`);
    // Two subscribers of customer 1 and one of customer 2 share two routes.
    const alsoOne = subscribe(ws.client, `subscription { largePaidOrdersChanges { ${CHANGE} } }`);
    const twoWs = wsClient(url, await sign({ role: 'customer', customerId: 2 }));
    clients.push(twoWs.client);
    const two = subscribe(twoWs.client, `subscription { largePaidOrdersChanges { ${CHANGE} } }`);
    const sse = new AbortController();
    const sseEvents: Change[] = [];
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${one}` },
      body: JSON.stringify({ query: `subscription { largePaidOrdersChanges { ${CHANGE} } }` }),
      signal: sse.signal,
    });
    expect(response.status).toBe(200);
    void (async () => {
      const decoder = new TextDecoder();
      let text = '';
      const reader = response.body!.getReader();
      try {
        for (let read = await reader.read(); !read.done; read = await reader.read()) {
          text += decoder.decode(read.value, { stream: true });
          for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
            const data = text.slice(0, end).split('\n').find((l) => l.startsWith('data: '));
            text = text.slice(end + 2);
            if (data) {
              const payload = JSON.parse(data.slice(6)) as { data?: { largePaidOrdersChanges: Change } };
              if (payload.data) sseEvents.push(payload.data.largePaidOrdersChanges);
            }
          }
        }
      } catch {
        // aborted
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    const before = await query<{ largePaidOrdersList: { version: string } }>(url, one, '{ largePaidOrdersList(first: 1) { version } }');

    // One transaction at a time (transactions applied in one step would show only their net change).
    for (const sql of [
      `INSERT INTO orders VALUES (1001, 1, 'paid', 500, now()), (1002, 2, 'paid', 600, now()), (1003, 3, 'paid', 700, now())`,
      `UPDATE orders SET customer_id = 2 WHERE id = 1001`, // leaves customer 1: a delete for them
      `UPDATE orders SET customer_id = 1 WHERE id = 1002`, // enters customer 1: an insert
      `UPDATE orders SET amount = amount + 1 WHERE id IN (1002, 1003)`, // an update for 1, nothing for 2
      `DELETE FROM orders WHERE id IN (1002, 1003)`,
    ]) {
      await shop.db.query(sql);
      await shop.sync();
    }

    const expected = [
      { op: 'INSERT', row: { id: 1001, customerId: 1, amount: '500.00' }, previous: null },
      { op: 'DELETE', row: null, previous: { id: 1001, customerId: 1, amount: '500.00' } },
      { op: 'INSERT', row: { id: 1002, customerId: 1, amount: '600.00' }, previous: null },
      { op: 'UPDATE', row: { id: 1002, customerId: 1, amount: '601.00' }, previous: { id: 1002, customerId: 1, amount: '600.00' } },
      { op: 'DELETE', row: null, previous: { id: 1002, customerId: 1, amount: '601.00' } },
    ];
    const strip = (events: Change[]) => events.map(({ op, row, previous }) => ({ op, row, previous }));
    await until(() => live.events.length >= expected.length && sseEvents.length >= expected.length && two.events.length >= 3, 'the changes').catch((error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify({ live: live.events, liveErrors: live.errors, sse: sseEvents, two: two.events })}`);
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(strip(live.events)).toEqual(expected);
    expect(strip(alsoOne.events)).toEqual(expected);
    expect(strip(sseEvents)).toEqual(expected);
    // Customer 2: 1002 inserted, 1001 entering, 1002 leaving (a delete carrying only what 2 saw), 1001 stays.
    expect(strip(two.events)).toEqual([
      { op: 'INSERT', row: { id: 1002, customerId: 2, amount: '600.00' }, previous: null },
      { op: 'INSERT', row: { id: 1001, customerId: 2, amount: '500.00' }, previous: null },
      { op: 'DELETE', row: null, previous: { id: 1002, customerId: 2, amount: '600.00' } },
    ]);
    for (const e of [...live.events, ...sseEvents]) for (const image of [e.row, e.previous]) if (image) expect(image.customerId).toBe(1);

    // Resumed from a version before all of it: the catch-up from the changelog is judged the same way.
    const resumed = subscribe(ws.client, `subscription { largePaidOrdersChanges(since: "${before.data!.largePaidOrdersList.version}") { ${CHANGE} } }`);
    await until(() => resumed.events.length >= expected.length, 'the resumed changes');
    expect(strip(resumed.events)).toEqual(expected);
    // And a snapshot holds only the tenant's rows.
    const snap = subscribe(ws.client, `subscription { largePaidOrdersChanges(snapshot: true) { ${CHANGE} } }`);
    const rowsOfOne = await sqlRowsOf('largePaidOrders', 1);
    await until(() => snap.events.length >= rowsOfOne.length, 'the snapshot');
    expect(snap.events.map((e) => e.row!.id).sort((a, b) => a - b)).toEqual(rowsOfOne.map((r) => r['id']).sort((a, b) => Number(a) - Number(b)));
    sse.abort();
  });

  it('a subscription ends when its token expires (WebSocket closed with 4401, SSE with TOKEN_EXPIRED); a refused token never opens one', async () => {
    const shortLived = await sign({ role: 'customer', customerId: 1 }, { expiresIn: Math.floor(Date.now() / 1000) + 2 });
    const ws = wsClient(url, shortLived);
    clients.push(ws.client);
    const sub = subscribe(ws.client, `subscription { largePaidOrdersChanges { ${CHANGE} } }`);
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${shortLived}` },
      body: JSON.stringify({ query: `subscription { largePaidOrdersChanges { ${CHANGE} } }` }),
    });
    const closed = await Promise.race([ws.closed, new Promise<null>((r) => setTimeout(() => r(null), 6000))]);
    expect(closed).toEqual({ code: 4401, reason: 'The token expired' });
    await sub.done;
    const text = await Promise.race([response.text(), new Promise<string>((r) => setTimeout(() => r('(still open)'), 4000))]);
    expect(text).toContain('TOKEN_EXPIRED');

    const forged = wsClient(url, await sign({ role: 'customer', customerId: 1 }, { secret: 'another-secret-of-at-least-thirty-two-bytes' }));
    clients.push(forged.client);
    const refused = subscribe(forged.client, `subscription { largePaidOrdersChanges { ${CHANGE} } }`);
    expect(await forged.closed).toMatchObject({ code: 4401 });
    await refused.done;
    expect(refused.events).toEqual([]);
    const anonymous = wsClient(url, null);
    clients.push(anonymous.client);
    const notPublic = subscribe(anonymous.client, `subscription { largePaidOrdersChanges { ${CHANGE} } }`);
    await notPublic.done;
    expect(JSON.stringify(notPublic.errors)).toMatch(/Cannot query field .{0,2}largePaidOrdersChanges.{0,2} on type .{0,2}Subscription/);
  }, 20_000);
});

describe('keys from a JWKS URL', () => {
  let jwks: Server;
  let keys: JWK[] = [];
  let fetches = 0;
  let shop: ServiceFixture;

  beforeAll(async () => {
    jwks = createServer((_, res) => {
      fetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((r) => jwks.listen(0, '127.0.0.1', () => r()));
    const jwksUrl = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`;
    shop = await startFixture('permjwks', {
      config: (db, redis, name) =>
        ({
          ...shopTestConfig(db, redis, name),
          api: { auth: { jwt: { jwksUrl, claimsNamespace: 'https://hasura.io/jwt/claims', roleClaim: 'x-hasura-default-role', issuer: 'https://issuer.test' } } },
        }) as Config,
    });
  }, 60_000);

  afterAll(async () => {
    await shop?.close();
    await new Promise((r) => jwks.close(r));
  });

  async function keyPair(kid: string) {
    const { publicKey, privateKey } = await generateKeyPair('RS256');
    return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
  }
  const signWith = (key: Awaited<ReturnType<typeof keyPair>>, issuer = 'https://issuer.test') =>
    new SignJWT({ 'https://hasura.io/jwt/claims': { 'x-hasura-default-role': 'analyst' } })
      .setProtectedHeader({ alg: 'RS256', kid: key.kid })
      .setIssuer(issuer)
      .setExpirationTime('1h')
      .sign(key.privateKey);

  it('verifies tokens with the published keys, follows a key rotation, and refuses retired keys and other issuers', async () => {
    const first = await keyPair('k1');
    const second = await keyPair('k2');
    keys = [first.jwk];
    const q = '{ ordersByStatus(status: "paid") { orders } }';
    expect((await query(shop.service.url, await signWith(first), q)).status).toBe(200);
    expect((await query(shop.service.url, await signWith(first, 'https://elsewhere.test'), q)).status).toBe(401);
    // Rotation: k2 published, k1 retired. A token naming k2 makes the service fetch the keys again
    // (at most once per cooldown of 5 s).
    keys = [second.jwk];
    await new Promise((r) => setTimeout(r, 5200));
    const fetchesBefore = fetches;
    expect((await query(shop.service.url, await signWith(second), q)).status).toBe(200);
    expect(fetches).toBe(fetchesBefore + 1);
    expect((await query(shop.service.url, await signWith(first), q)).status).toBe(401);
    // Without a token (no anonymous role): 401.
    expect((await query(shop.service.url, null, q)).status).toBe(401);
  }, 30_000);
});
