/**
 * The shop data and the catch-up workload that `npm run bench` and `npm run bench:probe` share.
 */
import { readdirSync, readFileSync } from 'node:fs';
import type pg from 'pg';
import type { RedisClient } from '../views/store/redis.ts';

/** 1,000 customers, 500 products, `orders` orders and two lines each. */
export async function loadShopData(db: pg.Client, orders: number): Promise<void> {
  await db.query(
    `INSERT INTO customers SELECT i, 'c' || i, (ARRAY['DE','FR','US',NULL])[1 + i % 4], now() FROM generate_series(1, 1000) i`,
  );
  await db.query(
    `INSERT INTO products SELECT i, 'p' || i, (ARRAY['a','b','c','d'])[1 + i % 4], 1 + i % 90 FROM generate_series(1, 500) i`,
  );
  await db.query(
    `INSERT INTO orders SELECT i, 1 + (i::bigint * 7919) % 1000, (ARRAY['paid','paid','new','shipped'])[1 + i % 4], ((i::bigint * 7793) % 50000 + 99) / 100.0, now() FROM generate_series(1, ${orders}) i`,
  );
  await db.query(
    `INSERT INTO order_items SELECT o, l, 1 + (o + l) % 500, 1 + o % 5, 9.99 FROM generate_series(1, ${orders}) o, generate_series(1, 2) l`,
  );
  await db.query('ANALYZE');
}

/**
 * `transactions` transactions of 50 rows each, in turn: new paid orders, orders moved between
 * customers (each a retraction and an addition), deleted order lines. Returns the events: the rows
 * the statements changed (with many transactions the deletes pass the lines that exist, and a
 * statement changing no row is no event).
 */
export async function commitCatchUpWorkload(
  db: pg.Client,
  orders: number,
  transactions: number,
): Promise<number> {
  let events = 0;
  for (let i = 0; i < transactions; i++) {
    const base = orders + 1 + i * 50;
    let result;
    if (i % 3 === 0) {
      result = await db.query(
        `INSERT INTO orders SELECT g, 1 + (g::bigint * 31) % 1000, 'paid', (g % 1000) + 0.5, now() FROM generate_series(${base}, ${base + 49}) g`,
      );
    } else if (i % 3 === 1) {
      // The ids wrap within the orders loaded first, so every update changes 50 rows.
      const from = 1 + ((i * 50) % (orders - 49));
      result = await db.query(
        `UPDATE orders SET customer_id = 1 + (customer_id + 7) % 1000, amount = amount + 1 WHERE id BETWEEN ${from} AND ${from + 49}`,
      );
    } else {
      result = await db.query(
        `DELETE FROM order_items WHERE order_id BETWEEN ${1 + i * 25} AND ${i * 25 + 25}`,
      );
    }
    events += result.rowCount ?? 0;
  }
  return events;
}

/** Redis's CPU seconds so far (INFO cpu: user + system). */
export async function redisCpuSeconds(redis: RedisClient): Promise<number> {
  const info = await redis.sendCommand<string>(['INFO', 'cpu']);
  const get = (k: string): number => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return get('used_cpu_user') + get('used_cpu_sys');
}

/** Microseconds Redis spent per command so far (INFO commandstats), by command name. */
export async function redisCommandMicros(redis: RedisClient): Promise<Map<string, number>> {
  const info = await redis.sendCommand<string>(['INFO', 'commandstats']);
  const micros = new Map<string, number>();
  for (const [, command, usec] of info.matchAll(/^cmdstat_([^:]+):calls=\d+,usec=(\d+)/gm))
    micros.set(command!, Number(usec));
  return micros;
}

/**
 * The commands' own execution time between two `redisCommandMicros`, per event in microseconds,
 * largest first. Scripts are left out: their time includes the commands they run.
 */
export function redisCommandTimes(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
  events: number,
): { total: number; byCommand: [string, number][] } {
  const ours = /^(eval|evalsha|fcall|info|config)/;
  const byCommand = [...after]
    .filter(([command]) => !ours.test(command))
    .map(([command, usec]): [string, number] => [command, (usec - (before.get(command) ?? 0)) / events])
    .filter(([, usec]) => usec > 0)
    .sort(([, a], [, b]) => b - a);
  return { total: byCommand.reduce((sum, [, usec]) => sum + usec, 0), byCommand };
}

/** CPU seconds (user + system) in a /proc stat line: utime and stime, after the command name (which may hold spaces). */
function statCpuSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ: 100 on Linux
}

/** CPU seconds of a process so far, every thread, from /proc. */
export function processCpuSeconds(pid: number): number {
  return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/**
 * CPU seconds of a process's threads so far, split into its main thread and the rest (V8's
 * compiler and garbage-collector helpers, libuv's pool), from /proc; null where there is no /proc.
 */
export function threadCpuSeconds(pid: number = process.pid): { main: number; others: number } | null {
  try {
    let main = 0;
    let others = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const seconds = statCpuSeconds(readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8'));
      if (task === String(pid)) main += seconds;
      else others += seconds;
    }
    return { main, others };
  } catch {
    return null;
  }
}
