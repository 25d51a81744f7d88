/**
 * `npm run bench`: the example shop's views (joins, top-N and aggregates), measured side by side
 * with the naive baseline in one run on the same data.
 *
 *   setup       throwaway PostgreSQL + Redis (or $DATABASE_URL / $REDIS_URL), the shop schema,
 *               BENCH_ORDERS orders and two lines each; the service runs as a child process
 *               (`cdc-views start`), so its CPU time is its own
 *   snapshot    initial snapshot: source rows/s into all views
 *   throughput  the service is stopped, a write workload (inserts, updates that move rows between
 *               groups, deletes) is committed, the service is started again: source events/s applied
 *               while it catches up, and events per CPU-second of the service process and of Redis
 *               (INFO cpu) — for all the views, and for a second deployment of the six single-table
 *               views on the same data and workload; and each view's share (its planning CPU and
 *               Redis writes, from the service's /metrics)
 *   each view   the same catch-up into every view the workload reaches, each alone in a deployment
 *               of its own (with the views it reads): what one view costs with nothing to share the
 *               decoding and the steps with (BENCH_EACH_VIEW=0 skips it)
 *   latency     one-row transactions, one at a time: statement sent → the change pushed to a
 *               graphql-ws subscriber (p50/p99)
 *   baseline    the same transactions; after each, every view's SQL is re-run on PostgreSQL and
 *               diffed with the previous result: statement sent → diff found (p50/p99)
 *   reads       GraphQL point reads by key, one at a time over one keep-alive connection
 *               (p50/p99 after 500 warm-up requests; a plain node:http client, so the client's
 *               own overhead stays small)
 *   api         an --api-only instance beside the ingest: concurrent reads beside bare node:http,
 *               1,000 and 10,000 subscriptions, a reconnect storm (bench/api.ts; BENCH_API=0 skips it)
 *   reactions   a --reactions-only worker: changes handled/s and commit → handler live, and its
 *               catch-up rate (bench/reactions.ts; BENCH_REACTIONS=0 skips it)
 *   memory      Redis bytes of each view — rows, operator state, changelog — vs PostgreSQL bytes of
 *               its source tables
 *   durability  what acknowledging only durable steps costs: the same catch-up and push latency
 *               against a Redis of each persistence setting (no AOF; AOF everysec; AOF always),
 *               each with the mode the service picks for it (BENCH_DURABILITY=0 skips it)
 *   kafka       the same database through Debezium (PostgreSQL connector) and Kafka into a second
 *               deployment: records/s consumed into the views once Debezium has written its
 *               snapshot to Kafka, and statement → push latency through the whole chain
 *               (BENCH_KAFKA=0 skips it)
 *
 * Scale: BENCH_ORDERS (default 100,000; run 1,000,000 to see the work per event stay flat while the
 * baseline's re-query grows), BENCH_TXNS, BENCH_SAMPLES, BENCH_BASELINE_SAMPLES.
 *
 * Results: printed, and written to bench/results/<date>.json and .md.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import { createClient } from 'graphql-ws';
import pg from 'pg';
import WebSocket from 'ws';
import { changelogKey, keyPrefix, rowsKey, viewKeyPattern, viewStatePattern } from '../views/store/keys.ts';
import { connectRedis, deleteByPattern, scanKeys, type RedisClient } from '../views/store/redis.ts';
import { createRegistry, type CompiledView } from '../views/registry.ts';
import {
  startChildService,
  writeKafkaShopConfig,
  writeShopConfig,
  type ChildService,
} from '../test/support/child-service.ts';
import { connect, createDatabase, shopTestConfig, uniqueName, waitForSync } from '../test/support/shop.ts';
import { provide, serverNeeds } from '../scripts/provision.ts';
import { bareServer, benchApi, type ApiBenchResult, type LoadFigures } from './api.ts';
import { benchReactions, type ReactionsBenchResult } from './reactions.ts';
import {
  commitCatchUpWorkload,
  loadShopData,
  processCpuSeconds,
  redisCpuSeconds,
  threadCpuSeconds,
} from './workload.ts';
import { startPostgres, startRedis, type ThrowawayServer } from '../scripts/servers.ts';

const ORDERS = Number(process.env['BENCH_ORDERS'] ?? 100_000);
const KAFKA = process.env['BENCH_KAFKA'] !== '0';
const API = process.env['BENCH_API'] !== '0';
const REACTIONS = process.env['BENCH_REACTIONS'] !== '0';
const DURABILITY = process.env['BENCH_DURABILITY'] !== '0';
const EACH_VIEW = process.env['BENCH_EACH_VIEW'] !== '0';
const WORKLOAD_TXNS = Number(process.env['BENCH_TXNS'] ?? 1_000);
const LATENCY_SAMPLES = Number(process.env['BENCH_SAMPLES'] ?? 300);
/** The baseline re-runs every view's SQL per sample: at a million orders that is seconds each. */
const BASELINE_SAMPLES = Number(process.env['BENCH_BASELINE_SAMPLES'] ?? Math.min(LATENCY_SAMPLES, 100));
/** The first example's views, each over one table: measured apart to show what joins and top-N add. */
const SINGLE_TABLE_VIEWS = [
  'revenueByCustomer',
  'ordersByStatus',
  'largePaidOrders',
  'productSales',
  'productsByCategory',
  'customersByCountry',
];
const say = (line: string): void => void process.stdout.write(`${line}\n`);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
function summary(samples: number[]): { p50: number; p99: number; max: number; n: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN,
    n: sorted.length,
  };
}

async function main(): Promise<void> {
  // Config files written for the service processes: one folder, removed at the end.
  const scratch = mkdtempSync(join(tmpdir(), 'cdc-views-bench-'));
  process.env['CDC_VIEWS_SCRATCH'] = scratch;
  const started: ThrowawayServer[] = [];
  provide(serverNeeds());
  const serverUrl = process.env['DATABASE_URL'] ?? (started.push(await startPostgres()), started.at(-1)!.url);
  const redisUrl = process.env['REDIS_URL'] ?? (started.push(await startRedis()), started.at(-1)!.url);
  const name = uniqueName('bench');
  let child: ChildService | null = null;
  const redis = await connectRedis(redisUrl);
  try {
    const databaseUrl = await createDatabase(serverUrl, name);
    const db = await connect(databaseUrl);
    db.on('error', () => undefined); // the servers stop under it when the run fails
    say(`loading ${ORDERS} orders and ${2 * ORDERS} order lines…`);
    await loadShopData(db, ORDERS);
    const sourceRows = ORDERS * 3 + 1500;
    const config = shopTestConfig(databaseUrl, redisUrl, name);
    const registry = createRegistry(config);
    const configFile = writeShopConfig(databaseUrl, redisUrl, name);

    // --- snapshot (timed from the moment the service answers: process start-up is not ours to count)
    child = await startChildService(configFile, { LOG_LEVEL: 'warn' });
    let t = performance.now();
    await waitForSync(db, redis, name, name, 3_600_000);
    const snapshotSeconds = (performance.now() - t) / 1000;
    say(
      `snapshot: ${sourceRows} rows into ${registry.views.length} views in ${snapshotSeconds.toFixed(2)} s`,
    );
    child.process.kill('SIGTERM');
    await child.exited;
    // A second deployment with the single-table views only (the first example's six), on the same
    // data and the same workload: what joins and top-N add per event.
    const singleName = `${name}s`;
    const singleConfig = writeShopConfig(databaseUrl, redisUrl, singleName, { views: SINGLE_TABLE_VIEWS });
    child = await startChildService(singleConfig, { LOG_LEVEL: 'warn' });
    await waitForSync(db, redis, singleName, singleName, 3_600_000);
    child.process.kill('SIGTERM');
    await child.exited;
    // One deployment per view the workload reaches, with the views it reads: each view alone.
    const alone = EACH_VIEW
      ? registry.views
          .map((v, i) => ({ view: v.name, deployment: `${name}e${i}`, views: withInputs(registry, v.name) }))
          .filter((a) =>
            a.views.some((view) =>
              registry.byName.get(view)!.reads.some((r) => WORKLOAD_TABLES.includes(r.table.name)),
            ),
          )
          .map((a) => ({
            ...a,
            file: writeShopConfig(databaseUrl, redisUrl, a.deployment, { views: a.views }),
          }))
      : [];
    for (const a of alone) {
      child = await startChildService(a.file, { LOG_LEVEL: 'warn' });
      await waitForSync(db, redis, a.deployment, a.deployment, 3_600_000);
      child.process.kill('SIGTERM');
      await child.exited;
    }

    // --- throughput: write while the services are down, then measure each one's catch-up
    say(`committing ${WORKLOAD_TXNS} transactions while the service is stopped…`);
    const events = await commitCatchUpWorkload(db, ORDERS, WORKLOAD_TXNS);
    const catchUp = async (file: string, deployment: string, views: number) => {
      const redisCpuBefore = await redisCpuSeconds(redis);
      const service = await startChildService(file, { LOG_LEVEL: 'warn' });
      const started = performance.now();
      const cpuBefore = processCpuSeconds(service.process.pid!);
      const threadsBefore = threadCpuSeconds(service.process.pid!);
      await waitForSync(db, redis, deployment, deployment, 3_600_000);
      const seconds = (performance.now() - started) / 1000;
      const serviceCpuSeconds = processCpuSeconds(service.process.pid!) - cpuBefore;
      // V8's optimizing compiler and the collector's helpers run on threads of their own.
      const threadsAfter = threadCpuSeconds(service.process.pid!);
      const otherThreadsCpuSeconds =
        threadsBefore && threadsAfter ? threadsAfter.others - threadsBefore.others : null;
      const redisCpu = (await redisCpuSeconds(redis)) - redisCpuBefore;
      const result = {
        views,
        events,
        perView: await viewCosts(service.url),
        seconds,
        eventsPerSecond: events / seconds,
        serviceCpuSeconds,
        otherThreadsCpuSeconds,
        redisCpuSeconds: redisCpu,
        eventsPerServiceCpuSecond: events / serviceCpuSeconds,
        eventsPerCpuSecond: events / (serviceCpuSeconds + redisCpu),
      };
      say(
        `throughput (${views} views): ${events} events in ${seconds.toFixed(2)} s; service CPU ${serviceCpuSeconds.toFixed(2)} s (V8's other threads ${otherThreadsCpuSeconds?.toFixed(2) ?? '?'} s), Redis CPU ${redisCpu.toFixed(2)} s: ${result.eventsPerCpuSecond.toFixed(0)} events per CPU-second`,
      );
      return { service, result };
    };
    const single = await catchUp(singleConfig, singleName, SINGLE_TABLE_VIEWS.length);
    single.service.process.kill('SIGTERM');
    await single.service.exited;
    const eachView: EachViewResult[] = [];
    for (const a of alone) {
      const run = await catchUp(a.file, a.deployment, a.views.length);
      run.service.process.kill('SIGTERM');
      await run.service.exited;
      eachView.push({ view: a.view, with: a.views.filter((v) => v !== a.view), ...run.result });
      // Its slot and keys go: the later phases open slots of their own.
      await db.query('SELECT pg_drop_replication_slot($1)', [a.deployment]);
      await deleteByPattern(redis, `${keyPrefix(a.deployment)}:*`);
    }
    const all = await catchUp(configFile, name, registry.views.length);
    child = all.service;
    const throughput = { all: all.result, singleTable: single.result, eachView };

    // --- latency: ours (push) and the baseline (re-run SQL + diff), same transactions
    await db.query(
      `INSERT INTO orders VALUES (0, 1, 'paid', 1.00, now()) ON CONFLICT (id) DO UPDATE SET customer_id = 1, status = 'paid'`,
    );
    await waitForSync(db, redis, name, name);
    const ours = await pushLatency(child.url, db, LATENCY_SAMPLES);
    say(`push latency: p50 ${summary(ours).p50.toFixed(2)} ms, p99 ${summary(ours).p99.toFixed(2)} ms`);

    const baseline: number[] = [];
    const baselineDb = await connect(databaseUrl);
    baselineDb.on('error', () => undefined); // the servers stop under it when the run fails
    let previous = await runAllViews(baselineDb, registry.views);
    for (let i = 0; i < BASELINE_SAMPLES; i++) {
      const sent = performance.now();
      await db.query(`UPDATE orders SET amount = amount + 1 WHERE id = 0`);
      const next = await runAllViews(baselineDb, registry.views);
      const changed = registry.views.filter((v) => previous.get(v.name) !== next.get(v.name));
      if (changed.length === 0) throw new Error('baseline saw no change');
      baseline.push(performance.now() - sent);
      previous = next;
      await new Promise((r) => setTimeout(r, 10));
    }
    await baselineDb.end();
    say(`baseline: p50 ${summary(baseline).p50.toFixed(2)} ms, p99 ${summary(baseline).p99.toFixed(2)} ms`);

    // --- point reads (then the embedded service steps aside for the Kafka phase)
    const reads = await pointReads(child.url, 5000);

    // --- the API at scale: an --api-only instance beside the ingest process, limits raised for the fan-out
    let api: ApiBenchResult | null = null;
    if (API) {
      const apiConfig = writeShopConfig(databaseUrl, redisUrl, name, {
        api: { limits: { maxConnectionsPerIp: 5000, maxSubscriptionsPerConnection: 200 } },
      });
      const apiChild = await startChildService(apiConfig, { LOG_LEVEL: 'warn' }, ['--api-only']);
      try {
        api = await benchApi(apiChild.url, apiChild.process.pid!, db, 50_000_000, say);
      } finally {
        apiChild.process.kill('SIGKILL');
        await apiChild.exited;
      }
    }

    // --- reactions: a --reactions-only worker beside the ingest process
    const reactions = REACTIONS
      ? await benchReactions(name, databaseUrl, redisUrl, db, 60_000_000, say)
      : null;

    // --- memory
    const sourceBytes: Record<string, number> = {};
    for (const table of ['customers', 'products', 'orders', 'order_items']) {
      sourceBytes[table] = Number(
        (await db.query(`SELECT pg_total_relation_size($1) AS b`, [table])).rows[0].b,
      );
    }
    const memory: Record<string, ViewMemory> = {};
    for (const view of registry.views) {
      memory[view.name] = {
        ...(await viewBytes(redis, keyPrefix(name), view)),
        rowCount: Number(await redis.sendCommand<number>(['HLEN', rowsKey(keyPrefix(name), view.storage)])),
        sources: sourceTablesOf(registry, view.name),
      };
    }
    say(
      `memory: ${Object.entries(memory)
        .map(([v, m]) => `${v} ${((m.rows + m.state) / 1e6).toFixed(1)} MB`)
        .join(', ')}`,
    );
    child.process.kill('SIGTERM');
    await child.exited;
    child = null;

    const durability = DURABILITY ? await benchDurability(databaseUrl, db) : null;
    const kafka = KAFKA ? await benchKafka(databaseUrl, redisUrl, db, redis, name) : null;
    await db.end();

    const result = {
      date: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model,
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
      },
      data: {
        orders: ORDERS,
        orderItems: 2 * ORDERS,
        workloadTransactions: WORKLOAD_TXNS,
        workloadEvents: events,
      },
      snapshot: {
        rows: sourceRows,
        views: registry.views.length,
        seconds: snapshotSeconds,
        rowsPerSecond: sourceRows / snapshotSeconds,
      },
      throughput,
      latencyMs: { ours: summary(ours), baseline: summary(baseline) },
      pointReadMs: summary(reads.service),
      pointReadBareMs: summary(reads.bare),
      api,
      reactions,
      memory: { sourceBytes, views: memory },
      durability,
      kafka,
    };
    mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
    const stamp = result.date.replace(/[:.]/g, '-');
    writeFileSync(
      new URL(`./results/${stamp}.json`, import.meta.url),
      `${JSON.stringify(result, null, 2)}\n`,
    );
    const table = renderTable(result);
    writeFileSync(new URL(`./results/${stamp}.md`, import.meta.url), table);
    say('');
    say(table);
    say(`written to bench/results/${stamp}.{json,md}`);
  } finally {
    child?.process.kill('SIGKILL');
    await redis.quit().catch(() => undefined);
    for (const s of started) await s.stop();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Statement sent → change pushed to a graphql-ws subscriber, one single-row transaction at a time
 * (order 0 belongs to customer 1, whose revenue changes with it).
 */
async function pushLatency(url: string, db: pg.Client, samples: number): Promise<number[]> {
  const ws = createClient({ url: url.replace('http', 'ws'), webSocketImpl: WebSocket });
  const pushes: number[] = [];
  let onPush: (() => void) | null = null;
  ws.subscribe(
    { query: 'subscription { revenueByCustomerChanges(customerId: 1) { row { revenue } } }' },
    {
      next: () => (pushes.push(performance.now()), onPush?.()),
      error: () => undefined,
      complete: () => undefined,
    },
  );
  await new Promise((r) => setTimeout(r, 500));
  const latencies: number[] = [];
  for (let i = 0; i < samples; i++) {
    const seen = pushes.length;
    const arrived = new Promise<void>((r) => (onPush = r));
    const sent = performance.now();
    await db.query(`UPDATE orders SET amount = amount + 1 WHERE id = 0`);
    if (pushes.length === seen) await arrived;
    latencies.push(pushes[seen]! - sent);
    await new Promise((r) => setTimeout(r, 10));
  }
  await ws.dispose();
  return latencies;
}

/**
 * Each Redis persistence setting, with the acknowledgement mode the service picks for it: a
 * deployment of its own per setting (own Redis, own slot) on the same database, the same catch-up
 * workload (committed while the service is down) and the same push-latency probe.
 */
async function benchDurability(databaseUrl: string, db: pg.Client) {
  const settings = [
    { label: 'no AOF', redis: {} },
    { label: 'AOF, appendfsync everysec', redis: { appendonly: true, appendfsync: 'everysec' as const } },
    { label: 'AOF, appendfsync always', redis: { appendonly: true, appendfsync: 'always' as const } },
  ];
  const results = [];
  for (const setting of settings) {
    const server = await startRedis(setting.redis);
    const redis = await connectRedis(server.url);
    const name = uniqueName('durable');
    let child: ChildService | null = null;
    try {
      const configFile = writeShopConfig(databaseUrl, server.url, name, { durability: 'auto' });
      child = await startChildService(configFile, { LOG_LEVEL: 'warn' });
      await waitForSync(db, redis, name, name, 600_000);
      const ready = (await (await fetch(child.url.replace('/graphql', '/ready'))).json()) as {
        durability?: string;
      };
      child.process.kill('SIGTERM');
      await child.exited;
      const base = 10_000_000 + results.length * 1_000_000;
      const transactions = 300;
      for (let i = 0; i < transactions; i++) {
        await db.query(
          `INSERT INTO orders SELECT g, 1 + g % 1000, 'paid', (g % 1000) + 0.5, now() FROM generate_series(${base + i * 50}, ${base + i * 50 + 49}) g`,
        );
      }
      child = await startChildService(configFile, { LOG_LEVEL: 'warn' });
      const t = performance.now();
      await waitForSync(db, redis, name, name, 600_000);
      const catchUpSeconds = (performance.now() - t) / 1000;
      const latency = summary(await pushLatency(child.url, db, 100));
      results.push({
        setting: setting.label,
        mode: ready.durability ?? '?',
        eventsPerSecond: (transactions * 50) / catchUpSeconds,
        pushMs: latency,
      });
      say(
        `durability: ${setting.label} (${ready.durability}): ${((transactions * 50) / catchUpSeconds).toFixed(0)} events/s, push p50/p99 ${latency.p50.toFixed(2)}/${latency.p99.toFixed(2)} ms`,
      );
    } finally {
      child?.process.kill('SIGKILL');
      await db.query(`SELECT pg_drop_replication_slot('${name}')`).catch(() => undefined);
      await redis.quit().catch(() => undefined);
      await server.stop();
    }
  }
  await db.query(`DELETE FROM orders WHERE id >= 10000000`);
  return results;
}

/** The Kafka path: Debezium → Kafka → a second deployment of the same views. */
async function benchKafka(
  databaseUrl: string,
  redisUrl: string,
  db: pg.Client,
  redis: RedisClient,
  name: string,
) {
  const { startKafka, startConnect, postgresConnectorConfig } =
    await import('../scripts/kafka-stack/index.ts');
  say('kafka: starting Kafka and Kafka Connect with Debezium…');
  const kafka = await startKafka({ log: () => undefined });
  const connect = await startConnect({ brokers: kafka.brokers, log: () => undefined });
  let child: ChildService | null = null;
  try {
    const prefix = `${name}k`;
    const tables = ['public.orders', 'public.order_items', 'public.customers', 'public.products'];
    let t = performance.now();
    await connect.register(
      prefix,
      postgresConnectorConfig({
        databaseUrl,
        topicPrefix: prefix,
        tables,
        slotName: prefix,
        publicationName: prefix,
        extra: { 'poll.interval.ms': '5' },
      }),
    );
    await connect.waitForRunning(prefix);
    const topics = [...tables.map((table) => `${prefix}.${table}`), `${prefix}.transaction`];
    const { Kafka } = await import('kafkajs');
    const admin = new Kafka({ brokers: kafka.brokers, logLevel: 0 }).admin();
    await admin.connect();
    // Debezium's snapshot is in Kafka when the topics stop growing.
    let records = 0;
    for (let stable = 0; stable < 3;) {
      await new Promise((r) => setTimeout(r, 1000));
      let total = 0;
      for (const topic of topics) {
        const offsets = await admin.fetchTopicOffsets(topic).catch(() => []);
        total += offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
      }
      stable = total === records && total > 0 ? stable + 1 : 0;
      records = total;
    }
    await admin.disconnect();
    const debeziumSeconds = (performance.now() - t) / 1000;
    say(`kafka: Debezium wrote ${records} records in ${debeziumSeconds.toFixed(1)} s`);

    const configFile = writeKafkaShopConfig(
      { brokers: kafka.brokers, topicPrefix: prefix },
      redisUrl,
      prefix,
    );
    child = await startChildService(configFile, { LOG_LEVEL: 'warn' });
    t = performance.now();
    const cpuBefore = processCpuSeconds(child.process.pid!);
    while ((await fetch(child.url.replace('/graphql', '/ready'))).status !== 200)
      await new Promise((r) => setTimeout(r, 20));
    const consumeSeconds = (performance.now() - t) / 1000;
    const consumeCpu = processCpuSeconds(child.process.pid!) - cpuBefore;
    say(`kafka: ${records} records into the views in ${consumeSeconds.toFixed(2)} s`);
    const latency = await pushLatency(child.url, db, Math.min(LATENCY_SAMPLES, 200));
    void redis;
    return {
      records,
      debeziumSnapshotSeconds: debeziumSeconds,
      consumeSeconds,
      recordsPerSecond: records / consumeSeconds,
      serviceCpuSeconds: consumeCpu,
      latencyMs: summary(latency),
    };
  } finally {
    child?.process.kill('SIGKILL');
    await db.query(`SELECT pg_drop_replication_slot('${name}k')`).catch(() => undefined);
    await connect.stop();
    await kafka.stop();
  }
}

/**
 * Sequential GraphQL point reads over one keep-alive connection, after a warm-up — one document
 * with the key as a variable, as an app sends it — and bare node:http answering the same bytes the
 * same way, in the same run.
 */
async function pointReads(url: string, count: number): Promise<{ service: number[]; bare: number[] }> {
  const query =
    'query CustomerRevenue($id: Int!) { revenueByCustomer(customerId: $id) { orders revenue averageOrder } }';
  let answer = '';
  const sequential = async (target: string): Promise<number[]> => {
    const { hostname, port } = new URL(target);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = (body: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const sent = performance.now();
        const request = http.request(
          {
            host: hostname,
            port,
            path: '/graphql',
            method: 'POST',
            agent,
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          },
          (response) => {
            const chunks: Buffer[] = [];
            response.on('data', (c: Buffer) => chunks.push(c));
            response.on('end', () => {
              answer = Buffer.concat(chunks).toString();
              if (response.statusCode === 200) resolve(performance.now() - sent);
              else reject(new Error(`HTTP ${response.statusCode}`));
            });
          },
        );
        request.on('error', reject);
        request.end(body);
      });
    const latencies: number[] = [];
    for (let i = 0; i < count + 500; i++) {
      const ms = await post(JSON.stringify({ query, variables: { id: 1 + (i % 1000) } }));
      if (i >= 500) latencies.push(ms);
    }
    agent.destroy();
    return latencies;
  };
  const service = await sequential(url);
  const bare = await bareServer(answer);
  try {
    return { service, bare: await sequential(bare.url) };
  } finally {
    bare.stop();
  }
}

/** Every view's full result, as text, for the naive baseline's diff. */
async function runAllViews(db: pg.Client, views: readonly CompiledView[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const view of views) {
    // Top-N views end in their own ORDER BY … LIMIT: every view is read as a subquery.
    const { rows } = await db.query(`SELECT * FROM (${view.sql}) AS v`);
    out.set(
      view.name,
      rows
        .map((row) => JSON.stringify(row))
        .sort()
        .join('\n'),
    );
  }
  return out;
}

/** The tables a view reads, through the views it reads too. */
function sourceTablesOf(registry: ReturnType<typeof createRegistry>, name: string): string[] {
  const view = registry.byName.get(name)!;
  const tables = view.reads.map((r) => r.table.name.replace(/^public\./, ''));
  for (const other of view.dependsOn) tables.push(...sourceTablesOf(registry, other));
  return [...new Set(tables)];
}

interface ViewMemory {
  /** Bytes of the view's rows and their key index (what a reader reads). */
  readonly rows: number;
  /** Bytes of its operators' state (join indexes, group states, min/max candidates, top-N sets). */
  readonly state: number;
  /** Bytes of its changelog (bounded by redis.changelogMaxLength, not by the data). */
  readonly changelog: number;
  readonly rowCount: number;
  readonly sources: readonly string[];
}

/** Redis bytes (MEMORY USAGE, Redis's own overhead included) of one view: rows, state, changelog. */
async function viewBytes(
  redis: RedisClient,
  prefix: string,
  view: { name: string; storage: string },
): Promise<Pick<ViewMemory, 'rows' | 'state' | 'changelog'>> {
  const sum = async (pattern: string): Promise<number> => {
    let total = 0;
    for await (const keys of scanKeys(redis, pattern)) {
      const sizes = await Promise.all(
        keys.map((key) => redis.sendCommand<number | null>(['MEMORY', 'USAGE', key, 'SAMPLES', '0'])),
      );
      for (const size of sizes) total += size ?? 0;
    }
    return total;
  };
  const rows = await sum(viewKeyPattern(prefix, view.storage));
  const state = await sum(viewStatePattern(prefix, view.storage));
  const changelog =
    (await redis.sendCommand<number | null>([
      'MEMORY',
      'USAGE',
      changelogKey(prefix, view.name),
      'SAMPLES',
      '0',
    ])) ?? 0;
  return { rows, state, changelog };
}

type BenchResult = {
  api: ApiBenchResult | null;
  reactions: ReactionsBenchResult | null;
  machine: { cpus: number; cpu: string | undefined; memoryGiB: number; node: string };
  data: { orders: number; orderItems: number };
  snapshot: { rows: number; views: number; seconds: number; rowsPerSecond: number };
  throughput: Record<'all' | 'singleTable', ThroughputResult> & { eachView?: EachViewResult[] };
  latencyMs: { ours: ReturnType<typeof summary>; baseline: ReturnType<typeof summary> };
  pointReadMs: ReturnType<typeof summary>;
  pointReadBareMs?: ReturnType<typeof summary>;
  memory: { sourceBytes: Record<string, number>; views: Record<string, ViewMemory> };
  durability: Awaited<ReturnType<typeof benchDurability>> | null;
  kafka: Awaited<ReturnType<typeof benchKafka>> | null;
};
/** The tables the catch-up workload writes (bench/workload.ts). */
const WORKLOAD_TABLES = ['public.orders', 'public.order_items'];

/** A view and the declared views it reads, directly or further down. */
function withInputs(registry: ReturnType<typeof createRegistry>, view: string): string[] {
  const out = new Set<string>();
  const visit = (name: string): void => {
    if (out.has(name)) return;
    out.add(name);
    for (const input of registry.byName.get(name)?.dependsOn ?? []) visit(input);
  };
  visit(view);
  return [...out];
}

/** One view's catch-up in a deployment of its own. */
type EachViewResult = ThroughputResult & { view: string; with: string[] };
type ThroughputResult = {
  views: number;
  events: number;
  /** What each view cost the service during the catch-up (its /metrics: the process started for it). */
  perView: Record<string, { planSeconds: number; writes: number }>;
  seconds: number;
  eventsPerSecond: number;
  serviceCpuSeconds: number;
  /** Of the service's CPU, its threads other than the main one (V8's compiler, collector helpers); null without /proc. */
  otherThreadsCpuSeconds: number | null;
  redisCpuSeconds: number;
  eventsPerServiceCpuSecond: number;
  eventsPerCpuSecond: number;
};

/** A running service's per-view cost counters (api/metrics.ts), by view. */
async function viewCosts(graphqlUrl: string): Promise<ThroughputResult['perView']> {
  const text = await fetch(graphqlUrl.replace(/\/graphql$/, '/metrics')).then((r) => r.text());
  const out: ThroughputResult['perView'] = {};
  for (const [, metric, view, value] of text.matchAll(
    /^cdc_views_view_(plan_seconds|writes)_total\{view="([^"]+)"\} (\S+)$/gm,
  )) {
    const cost = (out[view!] ??= { planSeconds: 0, writes: 0 });
    if (metric === 'writes') cost.writes = Number(value);
    else cost.planSeconds = Number(value);
  }
  return out;
}

function renderTable(r: BenchResult): string {
  const f = (n: number, d = 1): string =>
    n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const mb = (bytes: number): string => `${f(bytes / 1e6, 2)} MB`;
  const tp = (t: ThroughputResult, what: string): string =>
    `| catch-up into ${t.views} views (${what}): events/s; events per CPU-second, service + Redis | ${f(t.eventsPerSecond, 0)}; ${f(t.eventsPerCpuSecond, 0)} (service ${f(t.serviceCpuSeconds, 2)} s${t.otherThreadsCpuSeconds === null ? '' : `, ${f(t.otherThreadsCpuSeconds, 2)} s of it on V8's own threads,`} + Redis ${f(t.redisCpuSeconds, 2)} s CPU for ${t.events.toLocaleString()} events) | — |`;
  const lines = [
    `Machine: ${r.machine.cpus} × ${r.machine.cpu ?? '?'}, ${r.machine.memoryGiB} GiB, Node ${r.machine.node}; data: ${r.data.orders.toLocaleString()} orders, ${r.data.orderItems.toLocaleString()} order lines`,
    '',
    "| metric | cdc-views | naive baseline (re-run every view's SQL after each transaction, diff) |",
    '| --- | --- | --- |',
    `| commit → change pushed, p50 | ${f(r.latencyMs.ours.p50, 2)} ms | ${f(r.latencyMs.baseline.p50, 2)} ms |`,
    `| commit → change pushed, p99 | ${f(r.latencyMs.ours.p99, 2)} ms | ${f(r.latencyMs.baseline.p99, 2)} ms |`,
    tp(r.throughput.all, 'all example views: joins, top-N'),
    tp(r.throughput.singleTable, 'the single-table views only'),
    `| transactions/s the baseline can follow | — | ${f(1000 / r.latencyMs.baseline.p50, 1)} (one full re-query of ${r.snapshot.views} views per transaction) |`,
    `| initial snapshot into ${r.snapshot.views} views | ${f(r.snapshot.rowsPerSecond, 0)} source rows/s (${r.snapshot.rows.toLocaleString()} rows, ${f(r.snapshot.seconds, 2)} s) | — |`,
    `| GraphQL point read, one client, p50 / p99 | ${f(r.pointReadMs.p50, 2)} / ${f(r.pointReadMs.p99, 2)} ms${r.pointReadBareMs ? ` (bare node:http, same bytes: ${f(r.pointReadBareMs.p50, 2)} / ${f(r.pointReadBareMs.p99, 2)} ms)` : ''} | — |`,
    ...(r.kafka
      ? [
          `| Kafka path: records/s into the views (Debezium snapshot in Kafka, ${r.kafka.records.toLocaleString()} records) | ${f(r.kafka.recordsPerSecond, 0)} (service CPU ${f(r.kafka.serviceCpuSeconds, 2)} s) | — |`,
          `| Kafka path: statement → push through Debezium and Kafka, p50 / p99 | ${f(r.kafka.latencyMs.p50, 2)} / ${f(r.kafka.latencyMs.p99, 2)} ms | — |`,
        ]
      : []),
    ...(r.durability
      ? [
          '',
          '| Redis persistence | acknowledged when (mode) | catch-up events/s | commit → push p50 / p99 |',
          '| --- | --- | --- | --- |',
          ...r.durability.map(
            (d) =>
              `| ${d.setting} | ${d.mode} | ${f(d.eventsPerSecond, 0)} | ${f(d.pushMs.p50, 2)} / ${f(d.pushMs.p99, 2)} ms |`,
          ),
        ]
      : []),
    ...(r.api ? renderApi(r.api, f) : []),
    ...(r.reactions
      ? [
          '',
          '| reactions (a --reactions-only worker; the handler POSTs each change to a local endpoint) | |',
          '| --- | --- |',
          `| live, single-order transactions for 100 customers | ${f(r.reactions.live.handledPerSecond, 0)} changes/s handled; commit → handler p50 ${f(r.reactions.live.commitToHandlerMs.p50, 1)} / p99 ${f(r.reactions.live.commitToHandlerMs.p99, 1)} ms |`,
          `| catch-up after 2,000 transactions while stopped | ${r.reactions.catchUp.changes.toLocaleString()} changes in ${f(r.reactions.catchUp.seconds, 2)} s: ${f(r.reactions.catchUp.handledPerSecond, 0)}/s, one at a time, timed from when the worker answers |`,
        ]
      : []),
    '',
    '| view | rows | Redis: rows + index | operator state | changelog | source tables (PostgreSQL bytes) | rows + state / source |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const [view, m] of Object.entries(r.memory.views)) {
    const source = m.sources.reduce((n, t) => n + (r.memory.sourceBytes[t] ?? 0), 0);
    lines.push(
      `| ${view} | ${m.rowCount.toLocaleString()} | ${mb(m.rows)} | ${mb(m.state)} | ${mb(m.changelog)} | ${m.sources.join(' + ')} (${mb(source)}) | ${f((100 * (m.rows + m.state)) / source, 2)} % |`,
    );
  }
  const all = r.throughput.all;
  const single = r.throughput.singleTable;
  const sum = (t: ThroughputResult, of: 'planSeconds' | 'writes'): number =>
    Object.values(t.perView).reduce((n, c) => n + c[of], 0);
  lines.push(
    '',
    `| view: its cost in the catch-up into ${all.views} views (${all.events.toLocaleString()} events; \`cdc_views_view_*_total\`) | planning time (synchronous: collector pauses in it included) | share of the service's CPU | Redis writes | writes per event |`,
    '| --- | --- | --- | --- | --- |',
  );
  for (const [view, c] of Object.entries(all.perView).sort(([, a], [, b]) => b.planSeconds - a.planSeconds))
    lines.push(
      `| ${view} | ${f(c.planSeconds, 3)} s | ${f((100 * c.planSeconds) / all.serviceCpuSeconds, 1)} % | ${c.writes.toLocaleString()} | ${f(c.writes / all.events, 2)} |`,
    );
  // What is not any view's: decoding, batching, sending the steps, the collector between them.
  for (const [t, what] of [
    [all, 'all views'],
    [single, `the ${single.views} single-table views, in their own catch-up`],
  ] as const)
    lines.push(
      `| ${what} | ${f(sum(t, 'planSeconds'), 3)} s | ${f((100 * sum(t, 'planSeconds')) / t.serviceCpuSeconds, 1)} % of ${f(t.serviceCpuSeconds, 2)} s; the rest, no view's: ${f((1e6 * (t.serviceCpuSeconds - sum(t, 'planSeconds'))) / t.events, 1)} µs per event | ${sum(t, 'writes').toLocaleString()} | ${f(sum(t, 'writes') / t.events, 2)} |`,
    );
  if (r.throughput.eachView?.length) {
    lines.push(
      '',
      `| view alone: the same catch-up in a deployment of its own (${all.events.toLocaleString()} events) | events per CPU-second, service + Redis | CPU per event: service (V8's own threads) + Redis | writes per event |`,
      '| --- | --- | --- | --- |',
    );
    for (const e of [...r.throughput.eachView].sort((a, b) => a.eventsPerCpuSecond - b.eventsPerCpuSecond)) {
      const us = (seconds: number): string => `${f((1e6 * seconds) / e.events, 1)} µs`;
      lines.push(
        `| ${e.view}${e.with.length ? ` (with ${e.with.join(', ')})` : ''} | ${f(e.eventsPerCpuSecond, 0)} | ${us(e.serviceCpuSeconds)}${e.otherThreadsCpuSeconds === null ? '' : ` (${us(e.otherThreadsCpuSeconds)})`} + ${us(e.redisCpuSeconds)} | ${f(sum(e, 'writes') / e.events, 2)} |`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

function renderApi(a: ApiBenchResult, f: (n: number, d?: number) => string): string[] {
  const load = (what: string, ours: LoadFigures, bare: LoadFigures, bytes: number): string =>
    `| ${what} (${bytes} B answer) | ${f(ours.requestsPerSecond, 0)}/s, p50 ${f(ours.p50, 2)} / p99 ${f(ours.p99, 2)} ms | ${f(bare.requestsPerSecond, 0)}/s, p50 ${f(bare.p50, 2)} / p99 ${f(bare.p99, 2)} ms | ${f((100 * ours.requestsPerSecond) / bare.requestsPerSecond, 0)} % |`;
  return [
    '',
    `| reads, ${a.concurrency} concurrent keep-alive clients (or one), --api-only instance | cdc-views | bare node:http, same bytes | share |`,
    '| --- | --- | --- | --- |',
    load('point read by key', a.reads.point, a.reads.barePoint, a.reads.pointBytes),
    ...(a.reads.onePoint && a.reads.bareOnePoint
      ? [load('point read by key, one client', a.reads.onePoint, a.reads.bareOnePoint, a.reads.pointBytes)]
      : []),
    load('list page of 50', a.reads.list, a.reads.bareList, a.reads.listBytes),
    ...(a.reads.filtered && a.reads.bareFiltered
      ? [
          load(
            'page of 50 in an indexed order (revenue DESC) with where + totalCount',
            a.reads.filtered,
            a.reads.bareFiltered,
            a.reads.filteredBytes ?? 0,
          ),
        ]
      : []),
    '',
    '| subscriptions under a live workload | opened in | pushes/s | commit → push p50 / p99 | service memory per subscription |',
    '| --- | --- | --- | --- | --- |',
    ...a.fanout.map(
      (x) =>
        `| ${x.subscriptions.toLocaleString()} over ${x.transport} (${x.connections.toLocaleString()} connections) | ${f(x.openSeconds, 1)} s | ${f(x.pushesPerSecond, 0)} | ${f(x.commitToPushMs.p50, 1)} / ${f(x.commitToPushMs.p99, 1)} ms | ${f(x.memoryPerSubscriptionKiB, 1)} KiB |`,
    ),
    `| reconnect storm: all ${a.storm.subscriptions.toLocaleString()} drop and resubscribe with since | every one live again in ${f(a.storm.allLiveSeconds, 2)} s | — | first event p50 ${f(a.storm.firstEventP50Ms, 0)} / p95 ${f(a.storm.firstEventP95Ms, 0)} ms | — |`,
  ];
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
