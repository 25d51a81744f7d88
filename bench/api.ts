/**
 * The API phase of `npm run bench`, against an `--api-only` instance beside the ingest process:
 *
 *   reads       point and list reads from concurrent keep-alive clients for a few seconds each:
 *               requests/s and p50/p99, beside a bare node:http server (its own process, like the
 *               service) answering the same bytes to the same clients in the same run
 *   fan-out     1,000 and 10,000 WebSocket subscriptions (100 per connection) and 1,000 over SSE,
 *               each to one of 100 customers, under a live workload of single-order transactions:
 *               pushes/s, commit-to-push p50/p99, service memory per subscription (RSS growth / n)
 *   storm       every WebSocket of the 10,000 subscriptions dropped at once, then all resubscribe
 *               with `since`: time until every subscription has its first event again, p95 per client
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createClient, type Client } from 'graphql-ws';
import type pg from 'pg';
import WebSocket from 'ws';

const KEYS = 100;

export interface LoadFigures {
  requestsPerSecond: number;
  p50: number;
  p99: number;
}
export interface FanoutFigures {
  transport: 'websocket' | 'sse';
  subscriptions: number;
  connections: number;
  openSeconds: number;
  pushesPerSecond: number;
  commitToPushMs: { p50: number; p99: number; n: number };
  memoryPerSubscriptionKiB: number;
}
export interface ApiBenchResult {
  concurrency: number;
  reads: {
    point: LoadFigures;
    list: LoadFigures;
    barePoint: LoadFigures;
    bareList: LoadFigures;
    pointBytes: number;
    listBytes: number;
    filtered?: LoadFigures;
    bareFiltered?: LoadFigures;
    filteredBytes?: number;
    /** One client, sequential. */
    onePoint?: LoadFigures;
    bareOnePoint?: LoadFigures;
  };
  fanout: FanoutFigures[];
  storm: StormFigures;
}
export interface StormFigures {
  subscriptions: number;
  allLiveSeconds: number;
  firstEventP95Ms: number;
  firstEventP50Ms: number;
}

const quantile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** `concurrency` clients, each sending the next request when its answer is in, for `seconds`. */
export async function load(url: string, body: () => string, concurrency: number, seconds: number): Promise<LoadFigures> {
  const { hostname, port } = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  const one = (text: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const sent = performance.now();
      const request = http.request(
        { host: hostname, port, path: '/graphql', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } },
        (response) => {
          response.resume();
          response.on('end', () => {
            if (response.statusCode !== 200) return reject(new Error(`HTTP ${response.statusCode}`));
            latencies.push(performance.now() - sent);
            resolve();
          });
        },
      );
      request.on('error', reject);
      request.end(text);
    });
  // Warm up, then measure.
  for (let i = 0; i < 200; i++) await one(body());
  latencies.length = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) await one(body());
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { requestsPerSecond: latencies.length / elapsed, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) };
}

/** A bare node:http server in a process of its own, answering every request with `body`. */
/** Bare node:http answering `body` to every request, in a process of its own. */
export async function bareServer(body: string): Promise<{ url: string; stop: () => void }> {
  const code = `const http = require('node:http');
const body = Buffer.from(process.env.BODY, 'base64');
const server = http.createServer((req, res) => { req.resume(); req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length }); res.end(body); }); });
server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
  const child = spawn(process.execPath, ['-e', code], { env: { ...process.env, BODY: Buffer.from(body).toString('base64') }, stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim())));
  return { url: `http://127.0.0.1:${port}/graphql`, stop: () => child.kill('SIGKILL') };
}

async function answer(url: string, query: string): Promise<string> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  return response.text();
}

/** Single-order transactions for the subscribed customers, one at a time; `sent` keeps each customer's last commit time. */
function liveWorkload(db: pg.Client, firstId: number): { sent: Map<number, number>; stop: () => Promise<number> } {
  const sent = new Map<number, number>();
  let running = true;
  let count = 0;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const customer = 1 + (i % KEYS);
      await db.query(`INSERT INTO orders VALUES (${firstId + i}, ${customer}, 'paid', 1.00, now())`);
      sent.set(customer, performance.now());
      count++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  return {
    sent,
    stop: async () => {
      running = false;
      await loop;
      return count;
    },
  };
}

interface Subscriber {
  customer: number;
  last: string | null;
  firstEventAt: number | null;
}

const CHANGE = 'version op row { orders revenue } transactionEnd';

function subscribeWs(client: Client, s: Subscriber, onEvent: (s: Subscriber) => void): void {
  const args = s.last ? `customerId: ${s.customer}, since: "${s.last}"` : `customerId: ${s.customer}`;
  client.subscribe(
    { query: `subscription { revenueByCustomerChanges(${args}) { ${CHANGE} } }` },
    {
      next: ({ data }) => {
        s.last = (data as { revenueByCustomerChanges: { version: string } }).revenueByCustomerChanges.version;
        onEvent(s);
      },
      error: () => undefined,
      complete: () => undefined,
    },
  );
}

function wsClient(url: string): Client {
  return createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0, lazy: false, onNonLazyError: () => undefined });
}

/** Where the fan-out runs: the API process, the database the workload writes, and the next free order id. */
export interface FanoutTarget {
  readonly apiUrl: string;
  readonly apiPid: number;
  readonly db: pg.Client;
  nextOrder: number;
}

export interface Fanout {
  readonly figures: FanoutFigures;
  readonly subscribers: Subscriber[];
  readonly clients: Client[];
  close(): void;
}

/**
 * `subscriptions` subscriptions (100 per WebSocket, or one SSE stream each), each to one of 100
 * customers, under 8 s of single-order transactions: pushes/s, commit → push, memory per subscription.
 */
export async function measureFanout(target: FanoutTarget, transport: 'websocket' | 'sse', subscriptions: number, say: (line: string) => void): Promise<Fanout> {
  const { apiUrl, apiPid, db } = target;
  const rssBefore = rssKiB(apiPid);
  const subscribers: Subscriber[] = Array.from({ length: subscriptions }, (_, i) => ({ customer: 1 + (i % KEYS), last: null, firstEventAt: null }));
  const latencies: number[] = [];
  let pushes = 0;
  let sent = new Map<number, number>();
  const onEvent = (s: Subscriber): void => {
    pushes++;
    const at = sent.get(s.customer);
    if (at !== undefined) latencies.push(performance.now() - at);
  };
  const opened = performance.now();
  const clients: Client[] = [];
  const aborts: AbortController[] = [];
  if (transport === 'websocket') {
    for (let c = 0; c < subscriptions / 100; c++) {
      const client = wsClient(apiUrl);
      clients.push(client);
      for (const s of subscribers.slice(c * 100, c * 100 + 100)) subscribeWs(client, s, onEvent);
    }
  } else {
    for (const s of subscribers) {
      const abort = new AbortController();
      aborts.push(abort);
      void fetch(apiUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({ query: `subscription { revenueByCustomerChanges(customerId: ${s.customer}) { ${CHANGE} } }` }),
        signal: abort.signal,
      })
        .then(async (response) => {
          const decoder = new TextDecoder();
          for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
            const text = decoder.decode(chunk, { stream: true });
            for (let i = text.indexOf('data: {"data"'); i >= 0; i = text.indexOf('data: {"data"', i + 1)) onEvent(s);
          }
        })
        .catch(() => undefined);
    }
  }
  // Attached once the API holds them all (its gauge).
  const deadline = Date.now() + 120_000;
  while ((await activeSubscriptions(apiUrl)) < subscriptions && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  const openSeconds = (performance.now() - opened) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  const rssOpen = rssKiB(apiPid);
  const workload = liveWorkload(db, target.nextOrder);
  sent = workload.sent;
  const started = performance.now();
  const startPushes = pushes;
  latencies.length = 0;
  await new Promise((r) => setTimeout(r, 8000));
  const commits = await workload.stop();
  target.nextOrder += commits;
  await new Promise((r) => setTimeout(r, 500));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const figures: FanoutFigures = {
    transport,
    subscriptions,
    connections: transport === 'websocket' ? subscriptions / 100 : subscriptions,
    openSeconds,
    pushesPerSecond: (pushes - startPushes) / elapsed,
    commitToPushMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), n: latencies.length },
    memoryPerSubscriptionKiB: (rssOpen - rssBefore) / subscriptions,
  };
  say(
    `fan-out ${subscriptions} ${transport}: opened in ${openSeconds.toFixed(1)} s, ${figures.pushesPerSecond.toFixed(0)} pushes/s, commit→push p50 ${figures.commitToPushMs.p50.toFixed(1)} p99 ${figures.commitToPushMs.p99.toFixed(1)} ms, ${figures.memoryPerSubscriptionKiB.toFixed(1)} KiB per subscription`,
  );
  return {
    figures,
    subscribers,
    clients,
    close: () => {
      for (const c of clients) void c.dispose();
      for (const a of aborts) a.abort();
    },
  };
}

/**
 * Reconnect storm: every socket of a fan-out dropped at once; all resubscribe with since. One
 * transaction touches every customer meanwhile, so each resumed subscription has a change to catch up on.
 */
export async function measureStorm(target: FanoutTarget, large: Fanout, say: (line: string) => void): Promise<StormFigures> {
  for (const c of large.clients) await c.terminate();
  await target.db.query(`INSERT INTO orders SELECT ${target.nextOrder} + g, g, 'paid', 1.00, now() FROM generate_series(1, ${KEYS}) g`);
  target.nextOrder += KEYS + 1;
  const dropped = performance.now();
  for (const s of large.subscribers) s.firstEventAt = null;
  const firsts: number[] = [];
  const onFirst = (s: Subscriber): void => {
    if (s.firstEventAt === null) {
      s.firstEventAt = performance.now();
      firsts.push(s.firstEventAt - dropped);
    }
  };
  const resumed: Client[] = [];
  for (let c = 0; c < large.subscribers.length / 100; c++) {
    const client = wsClient(target.apiUrl);
    resumed.push(client);
    for (const s of large.subscribers.slice(c * 100, c * 100 + 100)) subscribeWs(client, s, onFirst);
  }
  const deadline = Date.now() + 120_000;
  while (firsts.length < large.subscribers.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  firsts.sort((a, b) => a - b);
  const storm: StormFigures = {
    subscriptions: large.subscribers.length,
    allLiveSeconds: firsts.length === large.subscribers.length ? (firsts.at(-1) ?? 0) / 1000 : Number.NaN,
    firstEventP50Ms: quantile(firsts, 0.5),
    firstEventP95Ms: quantile(firsts, 0.95),
  };
  say(`reconnect storm: ${storm.subscriptions} subscriptions live again in ${storm.allLiveSeconds.toFixed(2)} s, first event p50 ${storm.firstEventP50Ms.toFixed(0)} p95 ${storm.firstEventP95Ms.toFixed(0)} ms`);
  for (const c of resumed) void c.dispose();
  return storm;
}

export async function benchApi(apiUrl: string, apiPid: number, db: pg.Client, firstOrderId: number, say: (line: string) => void): Promise<ApiBenchResult> {
  const concurrency = 16;
  // --- reads beside bare node:http
  // As apps send them: one document, the key as a variable.
  const pointQuery = (): string =>
    JSON.stringify({ query: 'query Customer($id: Int!) { revenueByCustomer(customerId: $id) { orders revenue averageOrder } }', variables: { id: 1 + Math.floor(Math.random() * 1000) } });
  const listQuery = (): string => JSON.stringify({ query: '{ revenueByCustomerList(first: 50) { nodes { customerId orders revenue } pageInfo { endCursor } version } }' });
  const pointBody = await answer(apiUrl, '{ revenueByCustomer(customerId: 7) { orders revenue averageOrder } }');
  const listBody = await answer(apiUrl, '{ revenueByCustomerList(first: 50) { nodes { customerId orders revenue } pageInfo { endCursor } version } }');
  const point = await load(apiUrl, pointQuery, concurrency, 5);
  const list = await load(apiUrl, listQuery, concurrency, 5);
  // One client, one request at a time: the latency a single reader sees (after the load above warmed it).
  const onePoint = await load(apiUrl, pointQuery, 1, 5);
  const barePointServer = await bareServer(pointBody);
  const barePoint = await load(barePointServer.url, pointQuery, concurrency, 5);
  const bareOnePoint = await load(barePointServer.url, pointQuery, 1, 5);
  barePointServer.stop();
  const bareListServer = await bareServer(listBody);
  const bareList = await load(bareListServer.url, listQuery, concurrency, 5);
  bareListServer.stop();
  // A page in an indexed order (revenueByCustomer declares .indexBy(desc revenue)) with a where and
  // its totalCount (the count with a filter scans the view: bounded by the scan budget).
  const filteredText = `{ revenueByCustomerList(first: 50, where: { orders: { gt: "1" } }, orderBy: [{ field: revenue, direction: DESC }]) { nodes { customerId orders revenue } pageInfo { endCursor } totalCount version } }`;
  const filteredQuery = (): string => JSON.stringify({ query: filteredText });
  const filteredBody = await answer(apiUrl, filteredText);
  if (filteredBody.includes('"errors"')) throw new Error(`the where/orderBy read failed: ${filteredBody.slice(0, 500)}`);
  const filtered = await load(apiUrl, filteredQuery, concurrency, 5);
  const bareFilteredServer = await bareServer(filteredBody);
  const bareFiltered = await load(bareFilteredServer.url, filteredQuery, concurrency, 5);
  bareFilteredServer.stop();
  const reads = { point, list, barePoint, bareList, pointBytes: Buffer.byteLength(pointBody), listBytes: Buffer.byteLength(listBody), filtered, bareFiltered, filteredBytes: Buffer.byteLength(filteredBody), onePoint, bareOnePoint };
  say(
    `reads (${concurrency} clients): point ${point.requestsPerSecond.toFixed(0)}/s p50 ${point.p50.toFixed(2)} p99 ${point.p99.toFixed(2)} ms (bare node:http ${barePoint.requestsPerSecond.toFixed(0)}/s); list ${list.requestsPerSecond.toFixed(0)}/s p50 ${list.p50.toFixed(2)} p99 ${list.p99.toFixed(2)} ms (bare ${bareList.requestsPerSecond.toFixed(0)}/s); where/orderBy/totalCount ${filtered.requestsPerSecond.toFixed(0)}/s p50 ${filtered.p50.toFixed(2)} p99 ${filtered.p99.toFixed(2)} ms`,
  );

  // --- fan-out
  const fanout: FanoutFigures[] = [];
  const target: FanoutTarget = { apiUrl, apiPid, db, nextOrder: firstOrderId };
  const measure = (transport: 'websocket' | 'sse', subscriptions: number): Promise<Fanout> => measureFanout(target, transport, subscriptions, say);
  const settle = async (): Promise<void> => {
    const deadline = Date.now() + 30_000;
    while ((await activeSubscriptions(apiUrl)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  };
  const small = await measure('websocket', 1000);
  fanout.push(small.figures);
  small.close();
  await settle();
  const sse = await measure('sse', 1000);
  fanout.push(sse.figures);
  sse.close();
  await settle();
  const large = await measure('websocket', 10_000);
  fanout.push(large.figures);

  const storm = await measureStorm(target, large, say);
  return { concurrency, reads, fanout, storm };
}

async function activeSubscriptions(apiUrl: string): Promise<number> {
  const text = await fetch(apiUrl.replace(/\/graphql$/, '/metrics')).then((r) => r.text());
  let total = 0;
  for (const m of text.matchAll(/^cdc_views_subscriptions_active\{[^}]*\} (\d+)/gm)) total += Number(m[1]);
  return total;
}
