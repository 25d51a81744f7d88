/**
 * What one client may ask of the API (`api.limits`, `api.cors`, `api.metrics`), against the real
 * service with real clients: graphql-armor's limits over HTTP and WebSocket, body size, batching,
 * CORS and the WebSocket Origin check, connections per IP, subscriptions per connection, idle
 * sockets, HTTP timeouts that spare SSE, /metrics behind a token and on its own port, masked
 * internal errors, and thousands of subscriptions opened and dropped without a leak.
 */
import { request as httpRequest } from 'node:http';
import { connect as tcpConnect, type Socket } from 'node:net';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiOptions } from '../../views/config.ts';
import { ConfigError } from '../../views/errors.ts';
import { createRegistry } from '../../views/registry.ts';
import { keyPrefix, rowsKey } from '../../views/store/keys.ts';
import { shopTestConfig, startFixture, type ServiceFixture } from '../support/shop.ts';

const METRICS_TOKEN = 'metrics-token-for-tests';
const APP_ORIGIN = 'https://app.example.com';

interface GraphqlResponse {
  status: number;
  headers: Headers;
  body: { data?: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] } | unknown[];
  bytes: number;
}

async function post(
  url: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<GraphqlResponse> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    body: JSON.parse(text) as GraphqlResponse['body'],
    bytes: Buffer.byteLength(text),
  };
}

function errorsOf(response: GraphqlResponse): { message: string; extensions?: Record<string, unknown> }[] {
  return Array.isArray(response.body) ? [] : (response.body.errors ?? []);
}

function firstError(response: GraphqlResponse): string {
  return errorsOf(response)[0]?.message ?? `no error in ${JSON.stringify(response.body)}`;
}

/** Fails fast instead of at the test's timeout when what should happen does not. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>(
    (_, reject) =>
      (timer = setTimeout(
        () => reject(new Error(`Expected ${what} within ${ms} ms, but it did not happen`)),
        ms,
      )),
  );
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** One operation over graphql-ws: its data, or the message of its first error. */
function overWs(client: Client, query: string): Promise<{ data?: unknown; error?: string }> {
  return within(
    5000,
    'the operation to end',
    new Promise((resolve) => {
      let result: { data?: unknown; error?: string } = {};
      client.subscribe(
        { query },
        {
          next: ({ data, errors }) => (result = errors ? { error: errors[0]!.message } : { data }),
          error: (error) =>
            resolve({
              error: Array.isArray(error)
                ? (error[0] as { message: string }).message
                : String((error as Error).message ?? error),
            }),
          complete: () => resolve(result),
        },
      );
    }),
  );
}

const wsUrl = (shop: ServiceFixture): string => shop.service.url.replace('http', 'ws');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A raw WebSocket's fate: opened, or refused with an HTTP status. */
function upgrade(
  url: string,
  options: WebSocket.ClientOptions = {},
): Promise<{ opened: WebSocket } | { status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, 'graphql-transport-ws', options);
    ws.once('open', () => resolve({ opened: ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', reject);
  });
}

/** A graphql-transport-ws connection made by hand: `subscribe` sends, nothing answers pings unless asked. */
async function rawGraphqlWs(url: string, options: WebSocket.ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, 'graphql-transport-ws', options);
  await new Promise<void>((resolve, reject) => {
    ws.once('error', reject);
    ws.once('open', () => ws.send(JSON.stringify({ type: 'connection_init' })));
    ws.on('message', (data: Buffer) => {
      if ((JSON.parse(data.toString()) as { type: string }).type === 'connection_ack') resolve();
    });
  });
  return ws;
}

function subscribeRaw(ws: WebSocket, id: string, query: string): void {
  ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query } }));
}

/** The total of `cdc_views_subscriptions_active` over every view. */
async function activeSubscriptions(metricsUrl: string): Promise<number> {
  const response = await fetch(metricsUrl, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  const text = await response.text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('cdc_views_subscriptions_active{'))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

async function waitForActive(metricsUrl: string, expected: number, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let active = await activeSubscriptions(metricsUrl);
  while (active !== expected && Date.now() < deadline) {
    await sleep(100);
    active = await activeSubscriptions(metricsUrl);
  }
  return active;
}

const CHANGE = (customerId: number): string =>
  `subscription { revenueByCustomerChanges(customerId: ${customerId}) { version op row { orders } } }`;

describe('API limits (defaults for graphql-armor and the body; small limits for connections and idleness)', () => {
  let shop: ServiceFixture;
  let ws: Client;

  beforeAll(async () => {
    shop = await startFixture('limits', {
      config: (db, redis, name) => ({
        ...shopTestConfig(db, redis, name),
        api: {
          graphiql: false, // production: introspection off, field suggestions hidden
          cors: { origins: [APP_ORIGIN] },
          limits: { maxConnectionsPerIp: 10, maxSubscriptionsPerConnection: 5, idleTimeoutMs: 1000 },
          metrics: { token: METRICS_TOKEN },
        },
      }),
    });
    ws = createClient({ url: wsUrl(shop), webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
  });

  afterAll(async () => {
    await ws?.dispose();
    await shop?.close();
  });

  // graphql-armor does not count aliases of __typename (no resolver behind it): alias a view.
  const aliases = (n: number): string =>
    Array.from({ length: n }, (_, i) => `a${i}: revenueByCustomer(customerId: ${i}) { orders }`).join(' ');
  const nested = (depth: number): string => '{ a '.repeat(depth) + '}'.repeat(depth);
  const page = `revenueByCustomerList(first: 1000) { nodes { customerId orders revenue averageOrder largestOrder smallestOrder } pageInfo { hasNextPage endCursor } version }`;
  const abusive: [limit: string, query: string, message: RegExp][] = [
    ['maxTokens', `{ ${'__typename '.repeat(1001)}}`, /^Syntax Error: Token limit of 1000 exceeded\.$/],
    ['maxDepth', nested(11), /^Syntax Error: Query depth limit of 10 exceeded, found 11\.$/],
    ['maxAliases', `{ ${aliases(16)} }`, /^Syntax Error: Aliases limit of 15 exceeded, found 16\.$/],
    ['maxCost', `{ a: ${page} b: ${page} }`, /^Syntax Error: Query Cost limit of \d+ exceeded, found \d+\.$/],
    [
      'maxDirectives',
      `{ __typename ${'@include(if: true) '.repeat(51)}}`,
      /^Syntax Error: Directives limit of 50 exceeded, found 51\.$/,
    ],
  ];

  it.each(abusive)(
    'refuses a document over %s with a clear error, over HTTP and over WebSocket (the socket stays)',
    async (_limit, query, message) => {
      const http = await post(shop.service.url, JSON.stringify({ query }));
      expect(firstError(http)).toMatch(message);
      expect(http.status).toBe(200); // application/json: errors travel in a 200 (GraphQL over HTTP)
      const strict = await post(shop.service.url, JSON.stringify({ query }), {
        accept: 'application/graphql-response+json',
      });
      expect(strict.status).toBe(400);
      expect(firstError(strict)).toMatch(message);
      expect(await overWs(ws, query)).toEqual({ error: expect.stringMatching(message) });
      // The connection survives its refused operation.
      expect(await overWs(ws, '{ __typename }')).toEqual({ data: { __typename: 'Query' } });
    },
  );

  it('admits one full page (the default cost fits the largest page of any view)', async () => {
    const http = await post(shop.service.url, JSON.stringify({ query: `{ ${page} }` }));
    expect(http.body).not.toHaveProperty('errors');
    expect(http.status).toBe(200);
  });

  it('refuses 5,000 aliases fast, with a small answer, over HTTP and WebSocket', async () => {
    const timed = async <T>(run: () => Promise<T>): Promise<[T, number]> => {
      const started = performance.now();
      const result = await run();
      return [result, performance.now() - started];
    };
    // 5,000 aliases of __typename fit in 64 KiB: the token limit stops the parser at token 1001.
    const typenames = `{ ${'a:__typename '.repeat(5000)}}`;
    const [http, httpMs] = await timed(() => post(shop.service.url, JSON.stringify({ query: typenames })));
    const [overSocket, wsMs] = await timed(() => overWs(ws, typenames));
    console.log(
      `5,000 aliases of __typename (${typenames.length} bytes): HTTP ${http.status} in ${httpMs.toFixed(1)} ms, ${http.bytes} bytes back: ${firstError(http)}; WebSocket in ${wsMs.toFixed(1)} ms: ${overSocket.error}`,
    );
    expect(firstError(http)).toBe('Syntax Error: Token limit of 1000 exceeded.');
    expect(http.bytes).toBeLessThan(200);
    expect(httpMs).toBeLessThan(500);
    expect(overSocket.error).toBe('Syntax Error: Token limit of 1000 exceeded.');
    expect(wsMs).toBeLessThan(500);

    // 5,000 aliases of a view do not: the body limit refuses them before anything is parsed.
    const rows = `{ ${aliases(5000)} }`;
    const [tooBig, bigMs] = await timed(() => post(shop.service.url, JSON.stringify({ query: rows })));
    console.log(
      `5,000 aliases of a view (${rows.length} bytes): HTTP ${tooBig.status} in ${bigMs.toFixed(1)} ms, ${tooBig.bytes} bytes back`,
    );
    expect(tooBig.status).toBe(413);
    expect(tooBig.bytes).toBeLessThan(300);
    expect(bigMs).toBeLessThan(500);
  });

  it('hides field suggestions when introspection is off', async () => {
    const http = await post(
      shop.service.url,
      JSON.stringify({ query: '{ revenueByCustomerLis(first: 1) { version } }' }),
    );
    expect(firstError(http)).toBe(
      'Cannot query field "revenueByCustomerLis" on type "Query". [Suggestion hidden]',
    );
    expect((await overWs(ws, '{ revenueByCustomerLis(first: 1) { version } }')).error).not.toContain(
      'Did you mean',
    );
  });

  it('answers 413 to a body over 64 KiB, by Content-Length and when streamed in chunks, and closes a WebSocket sending more', async () => {
    const big = JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(64 * 1024) } });
    const byLength = await post(shop.service.url, big);
    expect(byLength.status).toBe(413);
    expect(firstError(byLength)).toBe(
      'Expected a request body of at most 65536 bytes (api.limits.maxBodyBytes), but found more',
    );
    expect(byLength.headers.get('connection')).toBe('close');

    // Chunked: no Content-Length, so the bytes are counted as they arrive.
    const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        shop.service.url,
        { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } },
        (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 8; i++) req.write(big.slice(i * 10_000, (i + 1) * 10_000));
      req.end(big.slice(80_000));
    });
    expect(chunked.status).toBe(413);
    expect(JSON.parse(chunked.body).errors[0].message).toContain('api.limits.maxBodyBytes');

    // Just under the limit is fine.
    const fits = await post(
      shop.service.url,
      JSON.stringify({ query: '{ __typename }', variables: { pad: 'x'.repeat(60 * 1024) } }),
    );
    expect(fits.status).toBe(200);

    const socket = await rawGraphqlWs(wsUrl(shop));
    const closed = new Promise<number>((r) => socket.once('close', (code) => r(code)));
    socket.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: '{ __typename }', variables: { pad: 'x'.repeat(64 * 1024) } },
      }),
    );
    expect(await within(5000, 'the socket to close', closed)).toBe(1009); // message too big
  });

  it('refuses batched requests when batching is not configured', async () => {
    const batch = await post(
      shop.service.url,
      JSON.stringify([{ query: '{ __typename }' }, { query: '{ __typename }' }]),
    );
    expect(batch.status).toBeGreaterThanOrEqual(400);
    expect(batch.status).toBeLessThan(500);
    expect(firstError(batch)).toMatch(/batch/i);
  });

  it('sends CORS headers to a listed origin only, never credentials unless configured', async () => {
    const listed = await fetch(shop.service.url, {
      method: 'POST',
      headers: { origin: APP_ORIGIN, 'content-type': 'application/json' },
      body: '{"query":"{ __typename }"}',
    });
    expect(listed.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(listed.headers.get('access-control-allow-credentials')).toBeNull();
    const preflight = await fetch(shop.service.url, {
      method: 'OPTIONS',
      headers: {
        origin: APP_ORIGIN,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);

    for (const origin of ['https://evil.example', 'https://app.example.com.evil.example', 'null']) {
      const foreign = await fetch(shop.service.url, {
        method: 'POST',
        headers: { origin, 'content-type': 'application/json' },
        body: '{"query":"{ __typename }"}',
      });
      expect(foreign.headers.get('access-control-allow-origin'), origin).toBeNull();
      expect(foreign.headers.get('access-control-allow-credentials'), origin).toBeNull();
      const foreignPreflight = await fetch(shop.service.url, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST' },
      });
      expect(foreignPreflight.headers.get('access-control-allow-origin'), origin).toBeNull();
    }
  });

  it('refuses a WebSocket upgrade from a foreign Origin (403), accepts one from a listed origin or without Origin', async () => {
    const foreign = await upgrade(wsUrl(shop), { origin: 'https://evil.example' });
    expect(foreign).toEqual({
      status: 403,
      body: 'Expected an Origin listed in api.cors.origins, but found https://evil.example',
    });
    for (const options of [{ origin: APP_ORIGIN }, {}]) {
      const accepted = await upgrade(wsUrl(shop), options);
      expect('opened' in accepted, JSON.stringify(options)).toBe(true);
      if ('opened' in accepted) accepted.opened.close();
    }
  });

  it('caps open connections per client IP: the one over gets 429, over HTTP and WebSocket, until one closes', async () => {
    // From 127.0.0.2: this file's other clients (127.0.0.1) do not count against it.
    const { port } = new URL(shop.service.url);
    const open = async (): Promise<{ socket: Socket; response: string }> => {
      const socket = tcpConnect({ host: '127.0.0.1', port: Number(port), localAddress: '127.0.0.2' });
      await new Promise<void>((r) => socket.once('connect', () => r()));
      socket.write('GET /health HTTP/1.1\r\nHost: test\r\n\r\n');
      const response = await new Promise<string>((r) => socket.once('data', (d: Buffer) => r(d.toString())));
      return { socket, response };
    };
    const held: Socket[] = [];
    for (let i = 0; i < 10; i++) {
      const { socket, response } = await open();
      expect(response).toMatch(/^HTTP\/1\.1 200/);
      held.push(socket);
    }
    const over = await open();
    expect(over.response).toMatch(/^HTTP\/1\.1 429/);
    expect(over.response).toContain(
      'Expected at most 10 open connections from 127.0.0.2 (api.limits.maxConnectionsPerIp), but found more',
    );
    expect(over.response.toLowerCase()).toContain('connection: close');
    const overWsUpgrade = await upgrade(wsUrl(shop), { localAddress: '127.0.0.2' });
    expect(overWsUpgrade).toMatchObject({ status: 429 });
    // Another IP is not affected.
    expect((await post(shop.service.url, '{"query":"{ __typename }"}')).status).toBe(200);

    held.pop()!.destroy();
    await sleep(100);
    const again = await open();
    expect(again.response).toMatch(/^HTTP\/1\.1 200/);
    for (const socket of [...held, again.socket, over.socket]) socket.destroy();
  });

  it('caps subscriptions per WebSocket connection: the one over gets an error, the connection and its subscriptions stay', async () => {
    const client = createClient({ url: wsUrl(shop), webSocketImpl: WebSocket, retryAttempts: 0 });
    const events: unknown[] = [];
    const stops = Array.from({ length: 5 }, () =>
      client.subscribe(
        { query: CHANGE(601) },
        { next: (e) => void events.push(e), error: () => undefined, complete: () => undefined },
      ),
    );
    await waitForActive(shop.service.api.metricsUrl, 5);
    const over = await overWs(client, CHANGE(601));
    expect(over.error).toBe(
      'Expected at most 5 subscriptions on one connection (api.limits.maxSubscriptionsPerConnection), but found one more: complete one, or open another connection',
    );
    await shop.db.query(`INSERT INTO orders VALUES (601, 601, 'paid', 1.00, now())`);
    const deadline = Date.now() + 10_000;
    while (events.length < 5 && Date.now() < deadline) await sleep(50);
    expect(events).toHaveLength(5);
    // Completing one makes room for another.
    stops[0]!();
    await waitForActive(shop.service.api.metricsUrl, 4);
    client.subscribe(
      { query: CHANGE(601) },
      { next: () => undefined, error: () => undefined, complete: () => undefined },
    );
    expect(await waitForActive(shop.service.api.metricsUrl, 5)).toBe(5);
    await client.dispose();
    expect(await waitForActive(shop.service.api.metricsUrl, 0)).toBe(0);
  });

  it('terminates a WebSocket that answers no ping within idleTimeoutMs, releasing its subscription; one that answers stays', async () => {
    const silent = await rawGraphqlWs(wsUrl(shop), { autoPong: false });
    const lively = await rawGraphqlWs(wsUrl(shop));
    subscribeRaw(silent, '1', CHANGE(701));
    subscribeRaw(lively, '1', CHANGE(702));
    expect(await waitForActive(shop.service.api.metricsUrl, 2)).toBe(2);
    const started = performance.now();
    const code = await within(
      5000,
      'the silent socket to be terminated',
      new Promise<number>((r) => silent.once('close', (c) => r(c))),
    );
    const afterMs = performance.now() - started;
    console.log(
      `a WebSocket that answers no ping was terminated after ${afterMs.toFixed(0)} ms (idleTimeoutMs 1000), close code ${code}`,
    );
    expect(code).toBe(1006); // terminated, no close frame
    expect(afterMs).toBeGreaterThan(400);
    expect(afterMs).toBeLessThan(2500);
    expect(await waitForActive(shop.service.api.metricsUrl, 1)).toBe(1);
    await sleep(2000);
    expect(lively.readyState).toBe(WebSocket.OPEN);
    lively.close();
    expect(await waitForActive(shop.service.api.metricsUrl, 0)).toBe(0);
  });

  it('cuts a connection whose headers dribble in, but an SSE subscription outlives every timeout', async () => {
    const controller = new AbortController();
    const sse = await fetch(shop.service.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ query: CHANGE(801) }),
      signal: controller.signal,
    });
    const reader = sse.body!.getReader();

    // Slowloris: a header line every 300 ms never completes the request within headersTimeout (1 s here).
    const { port } = new URL(shop.service.url);
    const slow = tcpConnect({ host: '127.0.0.1', port: Number(port) });
    let answer = '';
    slow.on('data', (d: Buffer) => (answer += d.toString()));
    slow.write('GET /health HTTP/1.1\r\nHost: test\r\n');
    const dribble = setInterval(() => slow.writable && slow.write(`X-Slow-${Date.now()}: 1\r\n`), 300);
    const started = performance.now();
    await within(
      5000,
      'the slow connection to be cut',
      new Promise<void>((r) => slow.once('close', () => r())),
    ).finally(() => {
      clearInterval(dribble);
      slow.destroy();
    });
    const cutMs = performance.now() - started;
    console.log(`slow headers cut after ${cutMs.toFixed(0)} ms: ${answer.split('\r\n')[0]}`);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(cutMs).toBeLessThan(3000);

    // Past headersTimeout, requestTimeout (1 s), the WebSocket idle time and keepAliveTimeout (5 s).
    await sleep(6000 - cutMs);
    await shop.db.query(`INSERT INTO orders VALUES (801, 801, 'paid', 8.01, now())`);
    let text = '';
    const deadline = Date.now() + 10_000;
    while (!text.includes('revenueByCustomerChanges') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    expect(text).toContain('"revenueByCustomerChanges":{"version"');
  });

  it('/metrics needs the bearer token', async () => {
    const metricsUrl = shop.service.api.metricsUrl;
    expect(metricsUrl).toBe(shop.service.url.replace('/graphql', '/metrics'));
    const none = await fetch(metricsUrl);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
    expect(await none.json()).toEqual({
      error: 'Expected Authorization: Bearer <the metrics token>, but found none',
    });
    const wrong = await fetch(metricsUrl, { headers: { authorization: `Bearer ${METRICS_TOKEN}x` } });
    expect(wrong.status).toBe(401);
    const right = await fetch(metricsUrl, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(right.status).toBe(200);
    expect(await right.text()).toContain('cdc_views_subscriptions_active');
  });

  it('masks an unexpected internal error: no Redis key, script or stack reaches the client', async () => {
    // The last tests of this fixture: a view's rows become a string, then Redis goes away.
    await shop.redis.sendCommand([
      'SET',
      rowsKey(keyPrefix(shop.name), shop.registry.byName.get('revenueByCustomer')!.storage),
      'not a hash',
    ]);
    const query = JSON.stringify({ query: '{ revenueByCustomer(customerId: 601) { orders } }' });
    const corrupt = await post(shop.service.url, query);
    console.log(`a view's rows of the wrong type: the client sees ${JSON.stringify(corrupt.body)}`);
    expect(errorsOf(corrupt).map((e) => e.message)).toEqual(['Unexpected error.']);
    expectNothingInternal(JSON.stringify(corrupt.body));

    await shop.service.redis.close().catch(() => undefined);
    const gone = await post(shop.service.url, query);
    console.log(`Redis gone: the client sees ${JSON.stringify(gone.body)}`);
    // A store that is down is said so (a PublicError), without anything of its own.
    expect(errorsOf(gone).map((e) => e.extensions?.['code'])).toEqual(['STORE_UNAVAILABLE']);
    expectNothingInternal(JSON.stringify(gone.body));
  });

  function expectNothingInternal(text: string): void {
    expect(text).not.toContain(shop.name); // the deployment's key prefix
    expect(text).not.toMatch(
      /:v:|:rows|WRONGTYPE|script|user_script|\.ts:|\.js:|\n\s+at |ClientClosed|stack/i,
    );
  }
});

describe('API limits under load (metrics on a port of their own, generous connection cap)', () => {
  let shop: ServiceFixture;

  beforeAll(async () => {
    shop = await startFixture('limitsload', {
      config: (db, redis, name) => ({
        ...shopTestConfig(db, redis, name),
        api: {
          limits: { maxConnectionsPerIp: 1000, batching: 2 },
          metrics: { port: 0, token: METRICS_TOKEN },
        },
      }),
    });
  });

  afterAll(async () => {
    await shop?.close();
  });

  it('serves /metrics on its own port only (the API port answers 404), behind the token', async () => {
    const metricsUrl = new URL(shop.service.api.metricsUrl);
    expect(metricsUrl.port).not.toBe(new URL(shop.service.url).port);
    expect((await fetch(metricsUrl)).status).toBe(401);
    expect((await fetch(metricsUrl, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(
      200,
    );
    expect((await fetch(new URL('/graphql', metricsUrl))).status).toBe(404);
    const onApi = await fetch(shop.service.url.replace('/graphql', '/metrics'), {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(onApi.status).toBe(404);
    expect(await onApi.text()).not.toContain('cdc_views_');
  });

  it('shows field suggestions in development, and runs batches up to api.limits.batching', async () => {
    const typo = await post(
      shop.service.url,
      JSON.stringify({ query: '{ revenueByCustomerLis(first: 1) { version } }' }),
    );
    expect(firstError(typo)).toContain('Did you mean');
    const two = await post(
      shop.service.url,
      JSON.stringify([{ query: '{ __typename }' }, { query: '{ a: __typename }' }]),
    );
    expect(two.body).toEqual([{ data: { __typename: 'Query' } }, { data: { a: 'Query' } }]);
    const three = await post(
      shop.service.url,
      JSON.stringify([{ query: '{ __typename }' }, { query: '{ __typename }' }, { query: '{ __typename }' }]),
    );
    expect(three.status).toBe(413);
    expect(firstError(three)).toMatch(/batch/i);
  });

  it(
    'opens and drops thousands of subscriptions (WebSocket closed and terminated, SSE aborted): the gauge and the heap return',
    { timeout: 180_000 },
    async () => {
      const metricsUrl = shop.service.api.metricsUrl;
      const heap = (): number => {
        for (let i = 0; i < 3; i++) globalThis.gc?.();
        return process.memoryUsage().heapUsed;
      };
      const MB = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

      const round = async (
        sockets: number,
        perSocket: number,
        sse: number,
      ): Promise<{ peakHeap: number; openMs: number; dropMs: number }> => {
        const start = await activeSubscriptions(metricsUrl);
        let started = performance.now();
        const clients = await Promise.all(
          Array.from({ length: sockets }, () => rawGraphqlWs(shop.service.url.replace('http', 'ws'))),
        );
        clients.forEach((client, c) => {
          for (let i = 0; i < perSocket; i++)
            subscribeRaw(client, String(i), CHANGE(10_000 + ((c * perSocket + i) % 500)));
        });
        const aborts = Array.from({ length: sse }, () => new AbortController());
        const streams = await Promise.all(
          aborts.map((controller, i) =>
            fetch(shop.service.url, {
              method: 'POST',
              headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
              body: JSON.stringify({ query: CHANGE(20_000 + i) }),
              signal: controller.signal,
            }),
          ),
        );
        const expected = start + sockets * perSocket + sse;
        expect(await waitForActive(metricsUrl, expected, 60_000)).toBe(expected);
        const openMs = performance.now() - started;
        const peakHeap = heap();

        started = performance.now();
        clients.forEach((client, c) => (c % 2 === 0 ? client.close(1000) : client.terminate()));
        for (const controller of aborts) controller.abort();
        await Promise.all(streams.map((s) => s.body?.cancel().catch(() => undefined)));
        expect(await waitForActive(metricsUrl, start, 60_000)).toBe(start);
        return { peakHeap, openMs, dropMs: performance.now() - started };
      };

      // A first round at full size brings code, pools and caches to their working size; then two rounds are measured.
      await round(30, 100, 200);
      const gaugeBefore = await activeSubscriptions(metricsUrl);
      const heapBefore = heap();
      const after: number[] = [];
      for (let r = 1; r <= 2; r++) {
        const { peakHeap, openMs, dropMs } = await round(30, 100, 200);
        await sleep(500);
        after.push(heap());
        console.log(
          `round ${r}: 3,000 WebSocket subscriptions on 30 connections (15 closed, 15 terminated) + 200 SSE subscriptions (aborted): ` +
            `opened in ${openMs.toFixed(0)} ms, released in ${dropMs.toFixed(0)} ms; ` +
            `cdc_views_subscriptions_active ${gaugeBefore} → ${gaugeBefore + 3200} → ${await activeSubscriptions(metricsUrl)}; ` +
            `heapUsed ${MB(heapBefore)} before → ${MB(peakHeap)} while open → ${MB(after.at(-1)!)} after (${after.at(-1)! >= heapBefore ? '+' : ''}${MB(after.at(-1)! - heapBefore)})`,
        );
      }
      const gaugeAfter = await activeSubscriptions(metricsUrl);
      const heapAfter = after.at(-1)!;
      expect(gaugeAfter).toBe(gaugeBefore);
      expect(heapAfter - heapBefore).toBeLessThan(10 * 1024 * 1024); // a leak of 2 KB per subscription would show 6 MB a round
    },
  );
});

describe('api.cors, api.limits and api.metrics in the config', () => {
  const issuesOf = (api: ApiOptions): { path: string; message: string }[] => {
    try {
      createRegistry({ ...shopTestConfig('postgres://db', 'redis://redis', 'apiconfig'), api });
      return [];
    } catch (error) {
      if (error instanceof ConfigError) return [...error.issues];
      throw error;
    }
  };

  it('accepts absolute origins, positive integer limits and a port', () => {
    expect(
      issuesOf({
        port: 4000,
        cors: { origins: ['https://app.example.com', 'http://localhost:3000'], credentials: true },
        limits: {
          maxDepth: 12,
          maxAliases: 30,
          maxCost: 100_000,
          maxTokens: 2000,
          maxDirectives: 10,
          maxBodyBytes: 1 << 20,
          maxConnectionsPerIp: 500,
          maxSubscriptionsPerConnection: 200,
          idleTimeoutMs: 60_000,
          batching: 5,
        },
        metrics: { port: 9464, host: '0.0.0.0', token: 'abc' },
      }),
    ).toEqual([]);
    expect(issuesOf({ cors: { origins: ['*'] }, metrics: { port: 0 } })).toEqual([]);
  });

  it('lists every problem with its path', () => {
    const issues = issuesOf({
      port: 4000,
      cors: {
        origins: [
          '*',
          'https://app.example.com/',
          'app.example.com',
          'https://App.example.com',
          'ftp://files.example.com',
        ],
        credentials: true,
      },
      limits: { maxDepth: 0, maxCost: 1.5, idleTimeoutMs: -1, batching: '2' as unknown as number },
      metrics: { port: 4000, token: 'has space' },
    });
    expect(issues.map((i) => i.path)).toEqual([
      'api.cors.origins[1]',
      'api.cors.origins[2]',
      'api.cors.origins[3]',
      'api.cors.origins[4]',
      'api.cors.credentials',
      'api.limits.maxDepth',
      'api.limits.maxCost',
      'api.limits.idleTimeoutMs',
      'api.limits.batching',
      'api.metrics.port',
      'api.metrics.token',
    ]);
    expect(issues[0]!.message).toBe(
      `Expected an origin like 'https://app.example.com' or 'http://localhost:3000' (scheme and host, no path) or '*', but found "https://app.example.com/"`,
    );
    expect(issues[4]!.message).toBe(
      "Expected credentials only with listed origins (browsers refuse credentials with '*'), but found '*' among the origins",
    );
    expect(issues[5]!.message).toBe('Expected a positive integer, but found 0');
    expect(issues[9]!.message).toBe(
      "Expected a port other than the API's own (api.port), but found 4000 for both",
    );
    expect(issuesOf({ metrics: { port: 70_000 } })).toEqual([
      { path: 'api.metrics.port', message: 'Expected a port number from 0 to 65535, but found 70000' },
    ]);
    expect(
      issuesOf({ limits: { maxDepht: 5 } as never, metrics: { host: '0.0.0.0' } }).map((i) => i.message),
    ).toEqual([
      "Expected one of maxDepth, maxAliases, maxCost, maxTokens, maxDirectives, maxBodyBytes, maxConnectionsPerIp, maxSubscriptionsPerConnection, idleTimeoutMs, batching, sortInMemoryRows, but found 'maxDepht'",
      'Expected api.metrics.port with api.metrics.host (/metrics is otherwise served on the API port), but found no port',
    ]);
  });
});
