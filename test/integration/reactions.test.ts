/**
 * Reactions against a real local HTTP endpoint: a handler fires once per crossing and not for
 * changes that do not cross, is retried when it fails, parks what it gives up on without stopping
 * the others, and — SIGKILLed mid-handler — runs again after the restart with the same
 * idempotency key, so the endpoint can prove a single effect.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Config } from '../../views/config.ts';
import { crossedAbove, kinds, matches, reaction } from '../../views/reactions.ts';
import { eq, ne } from '../../views/define.ts';
import exampleShop from '../../examples/shop/views.config.ts';
import { changelogKey, keyPrefix, reactionDeadLetterKey } from '../../views/store/keys.ts';
import { connectRedis } from '../../views/store/redis.ts';
import { CLI, startChildService, scratchDir, type ChildService } from '../support/child-service.ts';
import { connect, createDatabase, shopTestConfig, startFixture, uniqueName, type ServiceFixture } from '../support/shop.ts';

interface Call {
  path: string;
  key: string;
  body: Record<string, unknown>;
}

/** An HTTP endpoint that records every call; `respond` decides each answer (status, delay). */
async function endpoint(respond: (call: Call, calls: Call[]) => { status: number; delayMs?: number }): Promise<{ url: string; calls: Call[]; server: Server }> {
  const calls: Call[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      const call: Call = { path: req.url ?? '', key: String(req.headers['idempotency-key'] ?? ''), body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
      calls.push(call);
      const { status, delayMs = 0 } = respond(call, calls);
      setTimeout(() => {
        res.writeHead(status);
        res.end();
      }, delayMs);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, calls, server };
}

async function until(check: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits until `count` reaction groups have joined a view's changelog. */
async function waitForGroups(shop: ServiceFixture, view: string, count: number): Promise<void> {
  const log = changelogKey(keyPrefix(shop.name), view);
  for (const stop = Date.now() + 15_000; Date.now() < stop; await new Promise((r) => setTimeout(r, 50))) {
    if ((await shop.redis.sendCommand<unknown[]>(['XINFO', 'GROUPS', log]).catch(() => [])).length >= count) return;
  }
}

describe('reactions in the service', () => {
  let shop: ServiceFixture;
  let hook: Awaited<ReturnType<typeof endpoint>>;

  beforeAll(async () => {
    // /flaky fails the first two attempts of each change; everything else succeeds.
    hook = await endpoint((call, calls) => ({ status: call.path === '/flaky' && calls.filter((c) => c.key === call.key).length <= 2 ? 500 : 200 }));
    const post = async (path: string, body: unknown, key: string, signal: AbortSignal): Promise<void> => {
      const response = await fetch(`${hook.url}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'idempotency-key': key }, signal });
      if (!response.ok) throw new Error(`${path} answered ${response.status}`);
    };
    shop = await startFixture('react', {
      config: (db, redis, name) => {
        const base = shopTestConfig(db, redis, name);
        return {
          ...base,
          reactions: {
            bigSpender: reaction(base.views['revenueByCustomer']!, {
              when: crossedAbove((row) => row['revenue']!, 100),
              handler: (change, ctx) => post('/big', { customerId: change.row!['customerId'], revenue: change.row!['revenue'] }, ctx.idempotencyKey, ctx.signal),
            }),
            newStatus: reaction(base.views['ordersByStatus']!, {
              when: kinds('entered'),
              backoffMs: 10,
              handler: (change, ctx) => post('/flaky', { status: change.row!['status'], attempt: ctx.attempt }, ctx.idempotencyKey, ctx.signal),
            }),
            broken: reaction(base.views['revenueByCustomer']!, {
              retries: 1,
              backoffMs: 10,
              handler: async () => {
                throw new Error('the supplier is down');
              },
              onGiveUp: (change, error) => post('/gave-up', { version: change.version, error: (error as Error).message }, 'x', AbortSignal.timeout(5000)),
            }),
          },
        } as Config;
      },
    });
  }, 60_000);

  afterAll(async () => {
    await shop?.close();
    await new Promise((r) => hook?.server.close(r));
  });

  it('fires once per crossing, retries a failing handler, parks what it gives up on while the others carry on', async () => {
    // A reaction handles the changes after it joined its view's changelog (once the view is live).
    await waitForGroups(shop, 'revenueByCustomer', 2);
    await waitForGroups(shop, 'ordersByStatus', 1);
    // Customer 501: 60 (entered, below) → 110 (crossed) → 115 (still above) → 65 (fell) → 105 (crossed again).
    for (const sql of [
      `INSERT INTO orders VALUES (5001, 501, 'paid', 60, now())`,
      `INSERT INTO orders VALUES (5002, 501, 'paid', 50, now())`,
      `INSERT INTO orders VALUES (5003, 501, 'paid', 5, now())`,
      `DELETE FROM orders WHERE id = 5002`,
      `INSERT INTO orders VALUES (5004, 501, 'paid', 40, now())`,
      `INSERT INTO orders VALUES (5005, 502, 'brand-new-status', 1, now())`,
    ]) {
      await shop.db.query(sql);
      await shop.sync();
    }
    await until(() => hook.calls.filter((c) => c.path === '/big').length >= 2 && hook.calls.some((c) => c.path === '/flaky' && c.body['status'] === 'brand-new-status' && c.body['attempt'] === 3), 'the reactions').catch(async (error: Error) => {
      const info = await shop.redis.sendCommand(['XINFO', 'GROUPS', changelogKey(keyPrefix(shop.name), 'revenueByCustomer')]);
      const len = await shop.redis.sendCommand(['XLEN', changelogKey(keyPrefix(shop.name), 'revenueByCustomer')]);
      throw new Error(`${error.message}: calls ${JSON.stringify(hook.calls)} groups ${JSON.stringify(info)} len ${len}`);
    });
    await new Promise((r) => setTimeout(r, 500));
    const big = hook.calls.filter((c) => c.path === '/big');
    expect(big.map((c) => c.body)).toEqual([
      { customerId: 501, revenue: '110.00' },
      { customerId: 501, revenue: '105.00' },
    ]);
    expect(new Set(big.map((c) => c.key)).size).toBe(2);
    expect(big[0]!.key).toMatch(/^revenueByCustomer:.+:\d+-\d+$/);
    // The new status: two failures, then the third attempt, all with one idempotency key.
    // ('paid' entered too: the first paid order of this database.)
    const flaky = hook.calls.filter((c) => c.path === '/flaky' && c.body['status'] === 'brand-new-status');
    expect(flaky.map((c) => c.body)).toEqual([1, 2, 3].map((attempt) => ({ status: 'brand-new-status', attempt })));
    expect(new Set(flaky.map((c) => c.key)).size).toBe(1);

    // The broken reaction parked each of customer 501's five changes (502's order is not paid: not in the view), with the error.
    const deadKey = reactionDeadLetterKey(keyPrefix(shop.name), 'broken');
    for (const stop = Date.now() + 10_000; (await shop.redis.sendCommand<number>(['XLEN', deadKey])) < 5 && Date.now() < stop; ) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 200));
    const dead = await shop.redis.sendCommand<[string, string[]][]>(['XRANGE', deadKey, '-', '+']);
    expect(dead.length).toBe(5);
    const first = Object.fromEntries(dead[0]![1].reduce<string[][]>((pairs, v, i, all) => (i % 2 === 0 ? [...pairs, [v, all[i + 1]!]] : pairs), []));
    expect(first).toMatchObject({ error: 'the supplier is down', attempts: '2' });
    expect(JSON.parse(first['change']!)).toMatchObject({ view: 'revenueByCustomer', kind: 'entered', row: { customerId: 501, revenue: '60.00' } });
    // Where failures go: beside the dead letters, the reaction's onGiveUp hook, once per change given up on.
    await until(() => hook.calls.filter((c) => c.path === '/gave-up').length >= 5, 'five give-ups');
    const gaveUp = hook.calls.filter((c) => c.path === '/gave-up');
    expect(gaveUp.map((c) => c.body['error'])).toEqual(Array(5).fill('the supplier is down'));
    expect(new Set(gaveUp.map((c) => c.body['version'])).size).toBe(5);

    // The counters follow each outcome (the dead letter is written just before its count).
    const wanted = ['cdc_views_reaction_changes_total{reaction="bigSpender",outcome="handled"} 2', 'cdc_views_reaction_changes_total{reaction="broken",outcome="dead-lettered"} 5'];
    let metrics = '';
    for (const stop = Date.now() + 5_000; Date.now() < stop; await new Promise((r) => setTimeout(r, 100))) {
      metrics = await fetch(shop.service.url.replace(/\/graphql$/, '/metrics')).then((r) => r.text());
      if (wanted.every((w) => metrics.includes(w))) break;
    }
    expect(metrics).toContain('cdc_views_reaction_changes_total{reaction="bigSpender",outcome="handled"} 2');
    // Two statuses entered ('paid' and the new one), each failing twice before it went through.
    expect(metrics).toContain('cdc_views_reaction_changes_total{reaction="newStatus",outcome="retried"} 4');
    expect(metrics).toContain('cdc_views_reaction_changes_total{reaction="broken",outcome="dead-lettered"} 5');
  });
});

/** A config file of the shop views with one reaction POSTing every crossing above 100 to `url` (with its process id). */
function writeReactionConfig(
  dir: string,
  name: string,
  databaseUrl: string,
  url: string,
  handlerDelayMs = 0,
  retries = 5,
  bounds: { warnBacklog?: number; maxBacklog?: number; changelogMaxLength?: number } = {},
): string {
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  const file = join(dir, 'views.config.mts');
  writeFileSync(
    file,
    `import shop from ${JSON.stringify(join(repo, 'examples/shop/views.config.ts'))};
import { source, reaction, crossedAbove } from ${JSON.stringify(join(repo, 'index.ts'))};
export default { ...shop, name: ${JSON.stringify(name)},
  source: source.postgres({ url: ${JSON.stringify(databaseUrl)}, slot: ${JSON.stringify(name)}, publication: ${JSON.stringify(name)} }),
  redis: { url: ${JSON.stringify(inject('redisUrl'))}, leaseTtlMs: 1500, durability: { mode: 'none' }${bounds.changelogMaxLength ? `, changelogMaxLength: ${bounds.changelogMaxLength}` : ''} },
  reactions: {
    bigSpender: reaction(shop.views.revenueByCustomer, {
      when: crossedAbove((row) => row.revenue, 100),
      timeoutMs: 2000,${bounds.warnBacklog ? `
      warnBacklog: ${bounds.warnBacklog},` : ''}${bounds.maxBacklog ? `
      maxBacklog: ${bounds.maxBacklog},` : ''}
      backoffMs: 50,
      retries: ${retries},
      handler: async (change, ctx) => {
        if (process.env.REACTION_FAIL) throw new Error('failing on purpose');
        await new Promise((r) => setTimeout(r, ${handlerDelayMs}));
        const r = await fetch(${JSON.stringify(url)} + '/big', { method: 'POST', body: JSON.stringify({ ...change.row, pid: process.pid }), headers: { 'idempotency-key': ctx.idempotencyKey }, signal: ctx.signal });
        if (!r.ok) throw new Error('answered ' + r.status);
      },
    }),
  },
};
`,
  );
  return file;
}

describe('reactions shared by workers', () => {
  const name = uniqueName('reactw');
  const children: ChildService[] = [];
  let dir: string;
  let hook: Awaited<ReturnType<typeof endpoint>>;

  beforeAll(async () => {
    hook = await endpoint(() => ({ status: 200 }));
  });

  afterAll(async () => {
    for (const c of children) c.process.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await new Promise((r) => hook?.server.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('two --reactions-only workers beside an --ingest-only process share the changes: each handled once, by one of them', async () => {
    const databaseUrl = await createDatabase(inject('databaseUrl'), name);
    const db = await connect(databaseUrl);
    dir = mkdtempSync(join(scratchDir(), 'reactw-'));
    const configFile = writeReactionConfig(dir, name, databaseUrl, hook.url, 100);
    try {
      children.push(await startChildService(configFile, {}, ['--ingest-only']));
      const workers = [await startChildService(configFile, {}, ['--reactions-only']), await startChildService(configFile, {}, ['--reactions-only'])];
      children.push(...workers);
      await until(() => workers.every((w) => w.output().includes('reaction joined its view')), 'both workers to join', 30_000);
      for (let i = 1; i <= 30; i++) await db.query(`INSERT INTO orders VALUES (${i}, ${1000 + i}, 'paid', 150, now())`);
      await until(() => hook.calls.length >= 30, 'thirty reactions', 30_000);
      await new Promise((r) => setTimeout(r, 1000));
      expect(hook.calls.length).toBe(30);
      expect(new Set(hook.calls.map((c) => c.key)).size).toBe(30);
      expect(new Set(hook.calls.map((c) => c.body['customerId']))).toEqual(new Set(Array.from({ length: 30 }, (_, i) => 1001 + i)));
      const byWorker = new Set(hook.calls.map((c) => c.body['pid']));
      expect(byWorker, 'both workers handled some').toEqual(new Set(workers.map((w) => w.process.pid)));
      // `status` shows the reaction: nothing pending or undelivered, no dead letters, two consumers.
      // (A worker's acknowledgements and counts queue behind its blocked read for up to a second.)
      let stdout = '';
      for (const stop = Date.now() + 10_000; !stdout.includes('handled 30 ') && Date.now() < stop; await new Promise((r) => setTimeout(r, 250))) {
        stdout = (await promisify(execFile)(process.execPath, [CLI, 'status', '--config', configFile])).stdout;
      }
      expect(stdout).toMatch(/reaction bigSpender +on revenueByCustomer: pending 0 {2}not yet delivered 0 {2}dead letters 0 {2}consumers 2/);
      expect(stdout).toContain('handled 30  skipped 0  retried 0  dead-lettered 0  lost 0');
      // Per view: rows and their bytes, the operator state's bytes (the groups of an aggregate), the last change.
      const line = /revenueByCustomer +live +rows +30 +~ *(\d+) B +operator state ~ *(\d+) B +last change +\d+ s ago +version \d+-\d+/.exec(stdout);
      expect(line, stdout).not.toBeNull();
      expect(Number(line![2])).toBeGreaterThan(0);
    } finally {
      await db.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
      await db.end();
    }
  }, 90_000);
});

describe('reactions no worker runs yet', () => {
  const name = uniqueName('reactn');
  const children: ChildService[] = [];
  let dir: string;
  let hook: Awaited<ReturnType<typeof endpoint>>;

  beforeAll(async () => {
    hook = await endpoint(() => ({ status: 200 }));
  });

  afterAll(async () => {
    for (const c of children) c.process.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await new Promise((r) => hook?.server.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the writer keeps their changes from the view going live, warns past warnBacklog, trims at maxBacklog saying what was lost; a late worker handles them all', async () => {
    const databaseUrl = await createDatabase(inject('databaseUrl'), name);
    const db = await connect(databaseUrl);
    const prefix = keyPrefix(name);
    const log = changelogKey(prefix, 'revenueByCustomer');
    dir = mkdtempSync(join(scratchDir(), 'reactn-'));
    const configFile = writeReactionConfig(dir, name, databaseUrl, hook.url, 0, 5, { warnBacklog: 5, maxBacklog: 45, changelogMaxLength: 10 });
    const redis = await connectRedis(inject('redisUrl'));
    const xlen = (): Promise<number> => redis.sendCommand<number>(['XLEN', log]);
    try {
      const ingest = await startChildService(configFile, {}, ['--ingest-only']);
      children.push(ingest);
      // The group exists once the view is live, with no process running the reaction.
      await until(() => ingest.output().includes('reaction group created'), 'the group', 30_000);
      expect(ingest.output()).toContain('where the view’s history starts');
      for (let i = 1; i <= 30; i++) await db.query(`INSERT INTO orders VALUES (${i}, ${1000 + i}, 'paid', 150, now())`);
      for (const stop = Date.now() + 20_000; (await xlen()) < 30 && Date.now() < stop; ) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 1500)); // trim passes ran meanwhile
      expect(await xlen(), 'nothing trimmed past the reaction (the length is 10)').toBeGreaterThanOrEqual(30);
      const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'status', '--config', configFile]);
      expect(stdout).toMatch(/reaction bigSpender +on revenueByCustomer: pending 0 {2}not yet delivered 30 {2}dead letters 0 {2}consumers 0/);
      expect(stdout).toContain('"revenue" crossed above 100');
      expect(stdout).toContain('handled 0  skipped 0  retried 0  dead-lettered 0  lost 0');
      expect(stdout).toMatch(/⚠ 30 changes wait \(more than warnBacklog 5\).*no worker has ever run it/);
      const metrics = await fetch(ingest.url.replace(/\/graphql$/, '/metrics')).then((r) => r.text());
      expect(metrics).toContain('cdc_views_reaction_backlog{reaction="bigSpender",state="undelivered"} 30');
      expect(ingest.output()).toContain('a reaction is far behind');

      // A worker started now handles every change since the view went live, once.
      const worker = await startChildService(configFile, {}, ['--reactions-only']);
      children.push(worker);
      await until(() => hook.calls.length >= 30, 'thirty reactions', 30_000);
      expect(new Set(hook.calls.map((c) => c.body['customerId']))).toEqual(new Set(Array.from({ length: 30 }, (_, i) => 1001 + i)));
      for (const stop = Date.now() + 10_000; (await xlen()) > 10 && Date.now() < stop; ) await new Promise((r) => setTimeout(r, 100));
      expect(await xlen(), 'caught up: trimmed back to its length').toBe(10);

      // With the worker gone, past maxBacklog (45) the oldest go anyway, and the dead letters say so.
      worker.process.kill('SIGKILL');
      await worker.exited;
      for (let i = 31; i <= 90; i++) await db.query(`INSERT INTO orders VALUES (${i}, ${1000 + i}, 'paid', 150, now())`);
      const dead = reactionDeadLetterKey(prefix, 'bigSpender');
      for (const stop = Date.now() + 20_000; (await redis.sendCommand<number>(['XLEN', dead])) === 0 && Date.now() < stop; ) await new Promise((r) => setTimeout(r, 100));
      const [[, fields]] = (await redis.sendCommand<[string, string[]][]>(['XRANGE', dead, '-', '+', 'COUNT', '1'])) as [[string, string[]]];
      expect(fields.slice(0, 2)).toEqual(['error', 'trimmed from the changelog before it was handled (maxBacklog reached)']);
      for (const stop = Date.now() + 10_000; (await xlen()) > 45 && Date.now() < stop; ) await new Promise((r) => setTimeout(r, 100));
      expect(await xlen(), 'held to maxBacklog (70 entries without it)').toBe(45);
    } finally {
      redis.destroy();
      await db.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
      await db.end();
    }
  }, 120_000);
});

describe('reactions through a SIGKILL', () => {
  const name = uniqueName('reactk');
  let dir: string;
  let child: ChildService | null = null;
  let hook: Awaited<ReturnType<typeof endpoint>>;
  const effects = new Set<string>();

  beforeAll(async () => {
    // The first call of each change hangs (the process is killed meanwhile); later ones succeed once per key.
    hook = await endpoint((call, calls) => {
      const seen = calls.filter((c) => c.key === call.key).length;
      if (seen > 1) effects.add(call.key);
      return { status: 200, delayMs: seen === 1 ? 60_000 : 0 };
    });
  });

  afterAll(async () => {
    child?.process.kill('SIGKILL');
    await child?.exited;
    hook?.server.closeAllConnections();
    await new Promise((r) => hook?.server.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a change whose handler was in flight when the process died is handled after the restart, with the same idempotency key', async () => {
    const databaseUrl = await createDatabase(inject('databaseUrl'), name);
    const db = await connect(databaseUrl);
    dir = mkdtempSync(join(scratchDir(), 'react-'));
    const configFile = writeReactionConfig(dir, name, databaseUrl, hook.url);
    try {
      child = await startChildService(configFile);
      await until(() => child!.output().includes('reaction joined its view'), 'the reaction to join its view', 30_000);
      await db.query(`INSERT INTO orders VALUES (1, 7, 'paid', 150, now())`);
      await until(() => hook.calls.length >= 1, 'the first call');
      child.process.kill('SIGKILL');
      await child.exited;
      // Restarted: the entry is still pending under the dead consumer; it is claimed once idle.
      child = await startChildService(configFile);
      await until(() => effects.size >= 1, 'the call after the restart', 30_000);
      expect(hook.calls.map((c) => c.key)).toEqual([hook.calls[0]!.key, hook.calls[0]!.key]);
      expect(hook.calls[1]!.body).toMatchObject({ customerId: 7, revenue: '150.00' });
      expect([...effects]).toEqual([hook.calls[0]!.key]);
    } finally {
      await db.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
      await db.end();
    }
  }, 90_000);
});

describe('a reaction behind the changelog', () => {
  let shop: ServiceFixture;
  let release: () => void = () => undefined;
  const released = new Promise<void>((r) => (release = r));
  const handled: string[] = [];

  beforeAll(async () => {
    shop = await startFixture('reactlag', {
      config: (db, redis, name) => {
        const base = shopTestConfig(db, redis, name);
        return {
          ...base,
          redis: { ...base.redis, changelogMaxLength: 20 },
          reactions: {
            slow: reaction(base.views['revenueByCustomer']!, {
              timeoutMs: 60_000,
              handler: async (change) => {
                await released;
                handled.push(`${change.row?.['customerId'] ?? change.previous?.['customerId']}:${change.row?.['orders'] ?? '-'}`);
              },
            }),
          },
        } as Config;
      },
    });
  }, 60_000);

  afterAll(async () => {
    release();
    await shop?.close();
  });

  it('keeps every change the reaction has not handled, past the changelog length, then trims behind it', async () => {
    const log = changelogKey(keyPrefix(shop.name), 'revenueByCustomer');
    await waitForGroups(shop, 'revenueByCustomer', 1);
    for (let i = 1; i <= 60; i++) {
      await shop.db.query(`INSERT INTO orders VALUES (${7000 + i}, 700, 'paid', 1, now())`);
      await shop.sync(); // one step each (a step logs a row once, with its net change)
    }
    await shop.sync();
    await new Promise((r) => setTimeout(r, 2500)); // a trim pass ran meanwhile
    // The reaction holds the first change; none of the sixty was trimmed (the length is 20).
    expect(await shop.redis.sendCommand<number>(['XLEN', log])).toBeGreaterThanOrEqual(60);
    release();
    for (const stop = Date.now() + 20_000; handled.length < 60 && Date.now() < stop; ) await new Promise((r) => setTimeout(r, 50));
    expect(handled).toEqual(Array.from({ length: 60 }, (_, i) => `700:${i + 1}`));
    // Caught up: the next pass trims it back to its length.
    for (const stop = Date.now() + 10_000; (await shop.redis.sendCommand<number>(['XLEN', log])) > 20 && Date.now() < stop; ) await new Promise((r) => setTimeout(r, 100));
    expect(await shop.redis.sendCommand<number>(['XLEN', log])).toBe(20);
    const metrics = await fetch(shop.service.url.replace(/\/graphql$/, '/metrics')).then((r) => r.text());
    expect(metrics).not.toContain('outcome="lost"');
  }, 60_000);
});

describe('replaying dead letters', () => {
  const name = uniqueName('reactr');
  let child: ChildService | null = null;
  let dir: string;
  let hook: Awaited<ReturnType<typeof endpoint>>;

  beforeAll(async () => {
    hook = await endpoint(() => ({ status: 200 }));
  });

  afterAll(async () => {
    child?.process.kill('SIGKILL');
    await child?.exited;
    await new Promise((r) => hook?.server.close(r));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('cdc-views reactions replay runs the handler again on the parked changes; those that go through leave the dead letters', async () => {
    const databaseUrl = await createDatabase(inject('databaseUrl'), name);
    const db = await connect(databaseUrl);
    dir = mkdtempSync(join(scratchDir(), 'reactr-'));
    const configFile = writeReactionConfig(dir, name, databaseUrl, hook.url, 0, 0);
    const run = promisify(execFile);
    try {
      child = await startChildService(configFile, { REACTION_FAIL: '1' });
      await until(() => child!.output().includes('reaction joined its view'), 'the reaction to join', 30_000);
      for (let i = 1; i <= 3; i++) await db.query(`INSERT INTO orders VALUES (${i}, ${2000 + i}, 'paid', 150, now())`);
      await until(() => (child!.output().match(/parked in its dead letters/g) ?? []).length >= 3, 'three parked changes', 30_000);
      const still = await run(process.execPath, [CLI, 'reactions', 'replay', 'bigSpender', '--config', configFile], { env: { ...process.env, REACTION_FAIL: '1' } }).catch((e: { code: number; stdout: string }) => e);
      expect(still).toMatchObject({ code: 1, stdout: 'bigSpender: 0 replayed, 3 still failing (left in the dead letters)\n' });
      const { stdout } = await run(process.execPath, [CLI, 'reactions', 'replay', 'bigSpender', '--from-dead-letters', '--config', configFile]);
      expect(stdout).toBe('bigSpender: 3 replayed, 0 still failing (left in the dead letters)\n');
      expect(hook.calls.map((c) => c.body['customerId']).sort()).toEqual([2001, 2002, 2003]);
      expect(hook.calls.every((c) => /^revenueByCustomer:200[123]:\d+-\d+$/.test(c.key))).toBe(true);
      const status = await run(process.execPath, [CLI, 'status', '--config', configFile]);
      expect(status.stdout).toMatch(/reaction bigSpender .* dead letters 0/);
    } finally {
      await db.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
      await db.end();
    }
  }, 90_000);
});

describe('reactions with concurrency', () => {
  let shop: ServiceFixture;
  let inFlight = 0;
  let most = 0;
  const busyKeys = new Set<number>();
  const overlaps: number[] = [];
  const seen = new Map<number, string[]>();
  let unorderedInFlight = 0;
  let unorderedMost = 0;

  beforeAll(async () => {
    shop = await startFixture('reactconc', {
      config: (db, redis, name) => {
        const base = shopTestConfig(db, redis, name);
        return {
          ...base,
          reactions: {
            unordered: reaction(base.views['revenueByCustomer']!, {
              when: matches((r) => eq(r['customerId']!, 100)),
              concurrency: 3,
              orderedByKey: false,
              handler: async () => {
                unorderedMost = Math.max(unorderedMost, ++unorderedInFlight);
                await new Promise((r) => setTimeout(r, 1500));
                unorderedInFlight--;
              },
            }),
            parallel: reaction(base.views['revenueByCustomer']!, {
              when: matches((r) => ne(r['customerId']!, 100)),
              concurrency: 3,
              handler: async (change) => {
                const customer = Number((change.row ?? change.previous)!['customerId']);
                if (busyKeys.has(customer)) overlaps.push(customer);
                busyKeys.add(customer);
                most = Math.max(most, ++inFlight);
                await new Promise((r) => setTimeout(r, 150));
                seen.set(customer, [...(seen.get(customer) ?? []), String(change.row?.['orders'] ?? 'gone')]);
                inFlight--;
                busyKeys.delete(customer);
              },
            }),
          },
        } as Config;
      },
    });
  }, 60_000);

  afterAll(() => shop?.close());

  it('with orderedByKey: false, one key’s changes run side by side too', async () => {
    await waitForGroups(shop, 'revenueByCustomer', 2);
    await shop.db.query(`INSERT INTO orders VALUES (101, 100, 'paid', 1, now())`);
    await shop.sync();
    await shop.db.query(`INSERT INTO orders VALUES (102, 100, 'paid', 1, now())`);
    await shop.sync();
    for (const stop = Date.now() + 20_000; unorderedMost < 2 && Date.now() < stop; ) await new Promise((r) => setTimeout(r, 50));
    expect(unorderedMost, 'customer 100’s two changes at once').toBe(2);
  }, 60_000);

  it('handles up to `concurrency` changes at once, one key’s changes one after another and in order', async () => {
    await waitForGroups(shop, 'revenueByCustomer', 1);
    // Six customers in one transaction (six changes at once), then three more changes of customer 1.
    await shop.db.query(`INSERT INTO orders SELECT g, g, 'paid', 1, now() FROM generate_series(1, 6) g`);
    await shop.sync();
    for (let i = 7; i <= 9; i++) {
      await shop.db.query(`INSERT INTO orders VALUES (${i}, 1, 'paid', 1, now())`);
      await shop.sync();
    }
    for (const stop = Date.now() + 20_000; [...seen.values()].flat().length < 9 && Date.now() < stop; ) await new Promise((r) => setTimeout(r, 50));
    expect(most).toBe(3);
    expect(overlaps, 'two changes of one key at once').toEqual([]);
    expect(seen.get(1)).toEqual(['1', '2', '3', '4']);
    for (let c = 2; c <= 6; c++) expect(seen.get(c)).toEqual(['1']);
  }, 60_000);
});

describe("the example shop's reactions", () => {
  let shop: ServiceFixture;
  let hook: Awaited<ReturnType<typeof endpoint>>;
  const before = process.env['SHOP_WEBHOOK_URL'];

  beforeAll(async () => {
    hook = await endpoint(() => ({ status: 200 }));
    process.env['SHOP_WEBHOOK_URL'] = hook.url; // read by the example's handlers when they run
    shop = await startFixture('reactshop', {
      seed: `INSERT INTO products VALUES (1, 'p1', 'books', 9.99, 30, 10), (2, 'p2', 'games', 5.00, 8, 10)`,
      config: (db, redis, name) => ({ ...shopTestConfig(db, redis, name), reactions: exampleShop.reactions }) as Config,
    });
  }, 60_000);

  afterAll(async () => {
    await shop?.close();
    await new Promise((r) => hook?.server.close(r));
    if (before === undefined) delete process.env['SHOP_WEBHOOK_URL'];
    else process.env['SHOP_WEBHOOK_URL'] = before;
  });

  it('reorder: one POST per fall below the reorder level (not while it stays low, not on the way up), with the quantity to order', async () => {
    await waitForGroups(shop, 'lowStock', 1);
    // Product 1: 30 → 12 (above) → 9 (falls: reorder) → 4 (still low) → 25 (delivered) → 9 (falls again) → reorder level 5 (not low any more).
    // Product 2 was low before the reaction existed (8 < 10): it goes lower, no reorder — it did not cross.
    for (const sql of [
      'UPDATE products SET stock = 12 WHERE id = 1',
      'UPDATE products SET stock = 9 WHERE id = 1',
      'UPDATE products SET stock = 4 WHERE id = 1',
      'UPDATE products SET stock = 3 WHERE id = 2',
      'UPDATE products SET stock = 25 WHERE id = 1',
      'UPDATE products SET stock = 9 WHERE id = 1',
      'UPDATE products SET reorder_level = 5 WHERE id = 1',
    ]) {
      await shop.db.query(sql);
      await shop.sync();
    }
    await until(() => hook.calls.filter((c) => c.path === '/reorders').length >= 2, 'two reorders');
    await new Promise((r) => setTimeout(r, 1000));
    const reorders = hook.calls.filter((c) => c.path === '/reorders');
    expect(reorders.map((c) => c.body)).toEqual([
      { productId: 1, category: 'books', stock: 9, reorderLevel: 10, quantity: 11 },
      { productId: 1, category: 'books', stock: 9, reorderLevel: 10, quantity: 11 },
    ]);
    expect(new Set(reorders.map((c) => c.key)).size, 'two crossings, two idempotency keys').toBe(2);
    expect(reorders[0]!.key).toMatch(/^lowStock:1:\d+-\d+$/);
  }, 60_000);
});
