/**
 * `npm run demo`: the example shop, live.
 *
 *   1. PostgreSQL and Redis: $DATABASE_URL / $REDIS_URL, or throwaway servers in a temporary folder, from
 *      binaries found or provided by scripts/provision.ts (the machine's, embedded PostgreSQL, Redis installed)
 *   2. the shop schema and sample data (when the tables are missing)
 *   3. the service with examples/shop/views.config.ts, GraphQL (GraphiQL) on $PORT or 4000
 *   4. a small live workload, and the view changes it causes, pushed over graphql-ws: an aggregate,
 *      a join (orders with their customer) and a top-N over a view (the 10 best customers)
 *   5. the example's reactions firing: a local "supplier" endpoint ($SHOP_WEBHOOK_URL) receives a
 *      reorder when a product's stock falls below its reorder level, and delivers a few seconds later
 *
 * Ctrl-C stops everything and removes the throwaway servers.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import pino from 'pino';
import { startService, type Service } from '../api/service.ts';
import config from '../examples/shop/views.config.ts';
import { provide, ProvisionError, serverNeeds } from './provision.ts';
import { freePort, MissingBinaryError, startPostgres, startRedis, type ThrowawayServer } from './servers.ts';

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const started: ThrowawayServer[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
let stopping = false;

async function stopAll(code: number): Promise<void> {
  // A terminal's Ctrl-C reaches npm and us both, so the signal may come twice: clean up once.
  if (stopping) return;
  stopping = true;
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
  for (const server of started) {
    await server.stop().catch(() => undefined);
    say(`removed ${server.dir}`);
  }
  say('demo stopped');
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

async function main(): Promise<void> {
  let databaseUrl = process.env['DATABASE_URL'];
  let redisUrl = process.env['REDIS_URL'];
  provide(serverNeeds(), { log: say });
  if (!databaseUrl) {
    say('starting a throwaway PostgreSQL (wal_level=logical)…');
    const server = await startPostgres();
    started.push(server);
    databaseUrl = server.url;
    say(`  PostgreSQL ${server.url}  (data in ${server.dir})`);
  }
  if (!redisUrl) {
    say('starting a throwaway Redis…');
    const server = await startRedis();
    started.push(server);
    redisUrl = server.url;
    say(`  Redis ${server.url}  (data in ${server.dir})`);
  }

  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  cleanups.push(() => db.end());
  const exists = await db.query(`SELECT to_regclass('public.orders') AS t`);
  if (!exists.rows[0].t) {
    say('creating the shop schema and sample data…');
    await db.query(readFileSync(new URL('../examples/shop/schema.sql', import.meta.url), 'utf8'));
    await db.query(readFileSync(new URL('../examples/shop/seed.sql', import.meta.url), 'utf8'));
  }

  if (!process.env['SHOP_WEBHOOK_URL']) process.env['SHOP_WEBHOOK_URL'] = await startSupplier(db);
  const port = process.env['PORT'] ? Number(process.env['PORT']) : await portOr(4000);
  // The demo speaks for itself on stdout; the service's JSON logs only for warnings (LOG_LEVEL to change).
  const logger = pino({ name: 'cdc-views', level: process.env['LOG_LEVEL'] ?? 'warn' });
  say('starting cdc-views with examples/shop/views.config.ts (initial snapshot, then streaming)…');
  const service: Service = await startService({
    config,
    databaseUrl,
    redisUrl,
    port,
    logger,
    onSnapshotProgress: (p) => {
      if (!p.done) return;
      say(`  snapshot ${p.table.padEnd(20)} ${String(p.rows).padStart(6)} rows`);
    },
  });
  cleanups.push(() => service.stop());
  await waitUntil(() => service.engine.ready);
  say('');
  say(`GraphQL ready at ${service.url}   (open it in a browser for GraphiQL)`);
  say(`  curl -s ${service.url} -H 'content-type: application/json' \\`);
  say(`       -d '{"query":"{ revenueByCustomer(customerId: 7) { orders revenue averageOrder largestOrder } }"}'`);
  say('');

  const ws = createClient({ url: service.url.replace('http', 'ws'), webSocketImpl: WebSocket });
  cleanups.push(() => ws.dispose());
  ws.subscribe(
    { query: 'subscription { revenueByCustomerChanges { version op key { customerId } row { orders revenue largestOrder } previous { revenue } } }' },
    {
      next: ({ data }) => {
        const c = (data as { revenueByCustomerChanges: Change }).revenueByCustomerChanges;
        say(
          `  live ▸ revenueByCustomer[customerId=${c.key.customerId}] ${c.op.toLowerCase()}: revenue ${c.previous?.revenue ?? '∅'} → ${c.row?.revenue ?? '∅'}, orders ${c.row?.orders ?? 0}, largest ${c.row?.largestOrder ?? '∅'}  (version ${c.version})`,
        );
      },
      error: (error) => say(`  subscription error: ${JSON.stringify(error)}`),
      complete: () => undefined,
    },
  );

  // A join (orders with their customer) and a top-N over a view (the 10 best customers), live too.
  ws.subscribe(
    { query: 'subscription { ordersWithCustomerChanges { op key { orderId } row { status amount customer country } } }' },
    {
      next: ({ data }) => {
        const c = (data as { ordersWithCustomerChanges: JoinChange }).ordersWithCustomerChanges;
        const r = c.row;
        say(`  live ▸ ordersWithCustomer[orderId=${c.key.orderId}] ${c.op.toLowerCase()}${r ? `: ${r.status} ${r.amount ?? '∅'} by ${r.customer} (${r.country ?? 'no country'})` : ''}`);
      },
      error: (error) => say(`  subscription error: ${JSON.stringify(error)}`),
      complete: () => undefined,
    },
  );
  ws.subscribe(
    { query: 'subscription { topCustomersChanges { op key { customerId } row { revenue } } }' },
    {
      next: ({ data }) => {
        const c = (data as { topCustomersChanges: TopChange }).topCustomersChanges;
        const what = c.op === 'INSERT' ? 'enters the top 10' : c.op === 'DELETE' ? 'leaves the top 10' : 'moves within the top 10';
        say(`  live ▸ topCustomers: customer ${c.key.customerId} ${what}${c.row ? ` (revenue ${c.row.revenue})` : ''}`);
      },
      error: (error) => say(`  subscription error: ${JSON.stringify(error)}`),
      complete: () => undefined,
    },
  );

  say('driving a small live workload (a transaction every second); Ctrl-C to stop');
  let nextId = Number((await db.query('SELECT coalesce(max(id), 0) + 1 AS n FROM orders')).rows[0].n);
  const timer = setInterval(() => {
    const id = nextId++;
    const customer = 1 + ((id * 7919) % 200);
    const amount = (((id * 7793) % 50000) + 99) / 100;
    const step = id % 4;
    // Each new order sells a few units of one of the first eight products (their stock runs low).
    const sale = `UPDATE products SET stock = stock - ${1 + (id % 4)} WHERE id = ${1 + (id % 8)};`;
    const sql =
      step === 0
        ? `BEGIN; INSERT INTO orders VALUES (${id}, ${customer}, 'new', ${amount}, now()); UPDATE orders SET status = 'paid' WHERE id = ${id}; ${sale} COMMIT;`
        : step === 1
          ? `BEGIN; INSERT INTO orders VALUES (${id}, ${customer}, 'paid', ${amount}, now()); ${sale} COMMIT;`
          : step === 2
            ? `UPDATE orders SET amount = amount + 10 WHERE id = (SELECT max(id) FROM orders WHERE status = 'paid')`
            : `DELETE FROM orders WHERE id = (SELECT min(id) FROM orders WHERE status = 'paid')`;
    db.query(sql).catch((error: unknown) => say(`  workload error: ${String(error)}`));
  }, 1000);
  cleanups.push(() => clearInterval(timer));
  await service.done;
}

/**
 * The shop's webhook, played locally: prints what the reactions send (once per idempotency key: a
 * reaction runs at least once) and, for a reorder, delivers the stock five seconds later.
 */
async function startSupplier(db: pg.Client): Promise<string> {
  const seen = new Set<string>();
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      res.writeHead(200).end();
      const key = String(req.headers['idempotency-key'] ?? '');
      if (seen.has(key)) return say(`  reaction ▸ repeat of ${key} dropped`);
      seen.add(key);
      const body = JSON.parse(text) as Record<string, string | number>;
      if (req.url === '/reorders') {
        say(`  reaction ▸ reorder: product ${body['productId']} (${body['category']}) stock ${body['stock']} < reorder level ${body['reorderLevel']}: ordering ${body['quantity']} units`);
        setTimeout(() => {
          db.query(`UPDATE products SET stock = stock + ${Number(body['quantity'])} WHERE id = ${Number(body['productId'])}`)
            .then(() => say(`  supplier ▸ delivered ${body['quantity']} units of product ${body['productId']}`))
            .catch(() => undefined);
        }, 5000).unref();
      } else {
        say(`  reaction ▸ bigCustomer: customer ${body['customerId']} passed 5,000 in paid revenue (${body['revenue']})`);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

interface Change {
  version: string;
  op: string;
  key: { customerId: number };
  row: { orders: string; revenue: string | null; largestOrder: string | null } | null;
  previous: { revenue: string | null } | null;
}

interface JoinChange {
  op: string;
  key: { orderId: number };
  row: { status: string; amount: string | null; customer: string; country: string | null } | null;
}

interface TopChange {
  op: string;
  key: { customerId: number };
  row: { revenue: string | null } | null;
}

async function portOr(preferred: number): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => void freePort().then(resolve));
    probe.listen(preferred, '127.0.0.1', () => probe.close(() => resolve(preferred)));
  });
}

async function waitUntil(check: () => boolean, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('Timed out waiting for the views to be ready');
    await new Promise((r) => setTimeout(r, 50));
  }
}

main().catch(async (error: unknown) => {
  process.stderr.write(`${error instanceof MissingBinaryError || error instanceof ProvisionError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  await stopAll(1);
});
