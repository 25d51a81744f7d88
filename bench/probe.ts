/**
 * `npm run bench:probe`: the bench's catch-up alone, with the service in this process — seconds
 * instead of the whole bench's minutes, to compare two versions of the code (run each a few times,
 * alternately: the machine's own speed drifts) or to profile the catch-up.
 *
 *   throwaway PostgreSQL + Redis (or $DATABASE_URL / $REDIS_URL), the shop and its data
 *   → the service builds the views, stops → the catch-up workload is committed (bench/workload.ts)
 *   → a new service catches up: events per CPU-second (this process + Redis), and each view's cost
 *
 * It also splits the service's CPU into its main thread and V8's other threads (optimizing compiler,
 * collector helpers), and Redis's CPU into its commands' own time and the rest (the write step's script).
 *
 * Unlike the bench, the JIT is warm from the snapshot (the same process): figures are higher than
 * the bench's cold restart, and only comparable with each other.
 *
 *   PROBE_VIEWS     comma-separated views (default: every shop view; views read by others included
 *                   by name, e.g. revenueByCustomer,topCustomers)
 *   PROBE_ORDERS    orders loaded first (default 20,000)
 *   PROBE_TXNS      transactions of 50 rows in the catch-up (default 300)
 *   PROBE_PROFILE   a folder: a V8 CPU profile of the catch-up is written there (catch-up.cpuprofile)
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Session } from 'node:inspector/promises';
import pino from 'pino';
import { startService } from '../api/service.ts';
import { provide, serverNeeds } from '../scripts/provision.ts';
import { startPostgres, startRedis, type ThrowawayServer } from '../scripts/servers.ts';
import { connect, createDatabase, shopTestConfig, uniqueName, waitForSync } from '../test/support/shop.ts';
import { connectRedis } from '../views/store/redis.ts';
import {
  commitCatchUpWorkload,
  loadShopData,
  redisCommandMicros,
  redisCpuSeconds,
  redisCommandTimes,
  threadCpuSeconds,
} from './workload.ts';

const ORDERS = Number(process.env['PROBE_ORDERS'] ?? 20_000);
const TXNS = Number(process.env['PROBE_TXNS'] ?? 300);
const VIEWS = process.env['PROBE_VIEWS']?.split(',');
const PROFILE = process.env['PROBE_PROFILE'];

provide(serverNeeds());
const started: ThrowawayServer[] = [];
const serverUrl = process.env['DATABASE_URL'] ?? (started.push(await startPostgres()), started.at(-1)!.url);
const redisUrl = process.env['REDIS_URL'] ?? (started.push(await startRedis()), started.at(-1)!.url);
const name = uniqueName('probe');
const logger = pino({ level: 'warn' });
try {
  const databaseUrl = await createDatabase(serverUrl, name);
  const db = await connect(databaseUrl);
  db.on('error', () => undefined); // the servers stop under it when the run fails
  const redis = await connectRedis(redisUrl);
  await loadShopData(db, ORDERS);
  const shop = shopTestConfig(databaseUrl, redisUrl, name);
  const unknown = (VIEWS ?? []).filter((v) => !(v in shop.views));
  if (unknown.length > 0) throw new Error(`PROBE_VIEWS: no view ${unknown.join(', ')} in the shop`);
  const config = VIEWS
    ? {
        ...shop,
        views: Object.fromEntries(Object.entries(shop.views).filter(([view]) => VIEWS.includes(view))),
      }
    : shop;
  let service = await startService({ config, port: 0, logger });
  await waitForSync(db, redis, name, name, 600_000);
  await service.stop();
  const events = await commitCatchUpWorkload(db, ORDERS, TXNS);

  service = await startService({ config, port: 0, logger });
  const session = new Session();
  if (PROFILE) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const redisBefore = await redisCpuSeconds(redis);
  const commandsBefore = await redisCommandMicros(redis);
  const cpuBefore = process.cpuUsage();
  const threadsBefore = threadCpuSeconds();
  const t = performance.now();
  await waitForSync(db, redis, name, name, 600_000);
  const seconds = (performance.now() - t) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const serviceCpu = (cpu.user + cpu.system) / 1e6;
  const threadsAfter = threadCpuSeconds();
  const redisCpu = (await redisCpuSeconds(redis)) - redisBefore;
  const commands = redisCommandTimes(commandsBefore, await redisCommandMicros(redis), events);
  if (PROFILE) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(join(PROFILE, 'catch-up.cpuprofile'), JSON.stringify(profile));
  }
  console.log(
    `catch-up of ${events.toLocaleString()} events into ${Object.keys(config.views).length} views in ${seconds.toFixed(2)} s: ` +
      `service CPU ${serviceCpu.toFixed(2)} s, Redis CPU ${redisCpu.toFixed(2)} s: ` +
      `${Math.round(events / (serviceCpu + redisCpu)).toLocaleString()} events per CPU-second`,
  );
  // V8 compiles optimized code and helps the collector on threads of its own: their CPU counts too.
  if (threadsBefore && threadsAfter)
    console.log(
      `  service CPU by thread: main ${(threadsAfter.main - threadsBefore.main).toFixed(2)} s, ` +
        `others (V8's compiler and collector helpers) ${(threadsAfter.others - threadsBefore.others).toFixed(2)} s`,
    );
  // The rest of Redis's CPU: the write step's script around its commands (unpacking the ops, the
  // loop), reading the requests, writing the replies.
  console.log(
    `  Redis per event: ${((redisCpu * 1e6) / events).toFixed(1)} µs of CPU, ${commands.total.toFixed(1)} µs of it in ` +
      `the commands themselves (${commands.byCommand
        .slice(0, 6)
        .map(([c, us]) => `${c} ${us.toFixed(1)}`)
        .join(', ')})`,
  );
  const costs = [...(service.engine?.viewCosts ?? [])].sort(([, a], [, b]) => b.ms - a.ms);
  for (const [view, { ms, writes }] of costs)
    console.log(
      `  ${view.padEnd(24)} ${(ms / 1000).toFixed(3)} s planning, ${(writes / events).toFixed(2)} writes per event`,
    );
  await service.stop();
  await redis.quit();
  await db.end();
} finally {
  for (const server of started.reverse()) await server.stop();
}
