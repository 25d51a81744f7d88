/**
 * The reactions phase of `npm run bench`: a `--reactions-only` worker beside the ingest process runs
 * one reaction on revenueByCustomer whose handler POSTs each change to a local HTTP endpoint.
 *
 *   live       single-order transactions for 100 customers, one after another, for 8 s:
 *              changes handled/s and commit → handler's request received, p50/p99
 *   catch-up   the worker stopped, 2,000 transactions committed, the worker started again:
 *              changes handled per second until it has caught up (its capacity, one change at a time)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { startChildService } from '../test/support/child-service.ts';

export interface ReactionsBenchResult {
  live: { handledPerSecond: number; commitToHandlerMs: { p50: number; p99: number; n: number } };
  /** Changes of revenueByCustomer the backlog of 2,000 single-order transactions made (a step logs a row once). */
  catchUp: { changes: number; seconds: number; handledPerSecond: number };
}

const quantile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;

/** Waits until no change has arrived for a second (several commits may be one change of a row); the last arrival. */
async function quiet(received: readonly { at: number }[], from: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const last = received.at(-1)?.at ?? 0;
    if ((received.length > from && performance.now() - last > 1000) || Date.now() > deadline) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function benchReactions(name: string, databaseUrl: string, redisUrl: string, db: pg.Client, firstOrderId: number, say: (line: string) => void): Promise<ReactionsBenchResult> {
  const received: { customer: number; at: number }[] = [];
  /** During the live phase: each customer's last commit, and commit → handler times measured on arrival. */
  const sent = new Map<number, number>();
  const latencies: number[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const arrival = { customer: Number((JSON.parse(text) as { customerId: number }).customerId), at: performance.now() };
      received.push(arrival);
      const committed = sent.get(arrival.customer);
      if (committed !== undefined) latencies.push(arrival.at - committed);
      res.writeHead(200);
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const repo = fileURLToPath(new URL('../', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'cdc-views-bench-reactions-'));
  const configFile = join(dir, 'views.config.mts');
  // A deployment of its own (the process writing the views keeps the reaction's group, so it must
  // declare the reaction): an --ingest-only process beside the worker, for the one view it reads.
  const deployment = `${name}_r`;
  writeFileSync(
    configFile,
    `import shop from ${JSON.stringify(join(repo, 'examples/shop/views.config.ts'))};
import { source, reaction } from ${JSON.stringify(join(repo, 'index.ts'))};
export default { ...shop, name: ${JSON.stringify(deployment)}, views: { revenueByCustomer: shop.views.revenueByCustomer },
  source: source.postgres({ url: ${JSON.stringify(databaseUrl)}, slot: ${JSON.stringify(deployment)}, publication: ${JSON.stringify(deployment)} }),
  redis: { url: ${JSON.stringify(redisUrl)}, durability: { mode: 'none' } },
  reactions: {
    everyChange: reaction(shop.views.revenueByCustomer, {
      handler: async (change, ctx) => {
        const r = await fetch(${JSON.stringify(url)}, { method: 'POST', body: JSON.stringify({ customerId: (change.row ?? change.previous).customerId }), headers: { 'idempotency-key': ctx.idempotencyKey }, signal: ctx.signal });
        if (!r.ok) throw new Error('answered ' + r.status);
      },
    }),
  },
};
`,
  );
  const ingest = await startChildService(configFile, { LOG_LEVEL: 'info' }, ['--ingest-only']);
  let worker = await startChildService(configFile, { LOG_LEVEL: 'info' }, ['--reactions-only']);
  try {
    for (const stop = Date.now() + 300_000; !worker.output().includes('reaction joined'); await new Promise((r) => setTimeout(r, 100))) {
      if (Date.now() > stop) throw new Error(`the reaction did not join: ${ingest.output().slice(-2000)}`);
    }
    // --- live
    let id = firstOrderId;
    const started = performance.now();
    const before = received.length;
    while (performance.now() - started < 8000) {
      const customer = 1 + (id % 100);
      await db.query(`INSERT INTO orders VALUES (${id++}, ${customer}, 'paid', 1.00, now())`);
      sent.set(customer, performance.now());
      await new Promise((r) => setTimeout(r, 5));
    }
    const elapsed = ((await quiet(received, before, 30_000)) - started) / 1000;
    sent.clear();
    latencies.sort((a, b) => a - b);
    const live = {
      handledPerSecond: (received.length - before) / elapsed,
      commitToHandlerMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), n: latencies.length },
    };
    say(`reactions live: ${live.handledPerSecond.toFixed(0)} changes/s handled, commit → handler p50 ${live.commitToHandlerMs.p50.toFixed(1)} p99 ${live.commitToHandlerMs.p99.toFixed(1)} ms`);

    // --- catch-up
    worker.process.kill('SIGTERM');
    await worker.exited;
    const backlog = 2000;
    for (let i = 0; i < backlog; i++) await db.query(`INSERT INTO orders VALUES (${id++}, ${1 + (i % 100)}, 'paid', 1.00, now())`);
    await new Promise((r) => setTimeout(r, 2000)); // the ingest has applied them
    const mark = received.length;
    worker = await startChildService(configFile, { LOG_LEVEL: 'info' }, ['--reactions-only']);
    const t = performance.now();
    const seconds = ((await quiet(received, mark, 120_000)) - t) / 1000;
    const catchUp = { changes: received.length - mark, seconds, handledPerSecond: (received.length - mark) / seconds };
    say(`reactions catch-up: ${catchUp.changes} changes in ${seconds.toFixed(2)} s (${catchUp.handledPerSecond.toFixed(0)}/s, one at a time)`);
    return { live, catchUp };
  } finally {
    for (const child of [worker, ingest]) {
      child.process.kill('SIGKILL');
      await child.exited;
    }
    await db.query(`SELECT pg_drop_replication_slot('${deployment}')`).catch(() => undefined);
    server.closeAllConnections();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
