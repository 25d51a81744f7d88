/**
 * Faults of PostgreSQL under a steady workload — a fast restart, a SIGKILL, the replication slot
 * dropped — and a transaction far larger than one write step, read by a concurrent reader. After
 * each: every view and a subscriber's copy equal SQL.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { faultTable, record, startRig, watchEngine, type Rig } from '../support/faults.ts';
import { graphql } from '../support/shop.ts';

const SEED = `INSERT INTO orders SELECT g, g % 5 + 1, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'new' END, (g % 400) + 0.5, now() FROM generate_series(1, 300) g`;

afterAll(() => console.log(`\n${faultTable()}\n`));

async function underWorkload(rig: Rig, inject: () => Promise<void>): Promise<number> {
  rig.workload.start();
  await new Promise((r) => setTimeout(r, 1000));
  const started = Date.now();
  await inject();
  await rig.sync(120_000);
  await rig.untilReady();
  const recoveryMs = Date.now() - started;
  await new Promise((r) => setTimeout(r, 800));
  await rig.workload.stop();
  await rig.sync();
  await rig.expectConsistent();
  return recoveryMs;
}

describe('faults of PostgreSQL', () => {
  it('PostgreSQL fast-restarted, then SIGKILLed: the pipeline retries (/ready 503 meanwhile) and resumes from its checkpoint', async () => {
    const rig = await startRig('f_pgrestart', { seed: SEED, ownPostgres: true });
    try {
      await rig.untilReady();
      const copy = rig.subscribe('largePaidOrders');
      const seen = watchEngine(rig.service);
      let notReady = false;
      const fast = await underWorkload(rig, async () => {
        await rig.pgServer!.restart();
        notReady = (await fetch(rig.service.url.replace('/graphql', '/ready'))).status === 503 || seen.restarts > 0;
      });
      const before = { ...copy.counts };
      const killed = await underWorkload(rig, async () => {
        await rig.pgServer!.kill();
        await rig.pgServer!.restart();
      });
      expect(seen.rebuilds).toEqual([]);
      expect(seen.restarts).toBeGreaterThan(0);
      expect(notReady).toBe(true);
      record({ fault: 'PostgreSQL fast restart (pg_ctl -m fast)', outcome: 'survived: pipeline retried, resumed from its checkpoint', recoveryMs: fast, lostChanges: 0, subscribers: 'no reset; changes continue' });
      record({ fault: 'PostgreSQL SIGKILLed (crash recovery)', outcome: 'survived: pipeline retried, resumed from its checkpoint', recoveryMs: killed, lostChanges: 0, subscribers: `${copy.summary(before)}; no reset` });
    } finally {
      await rig.close();
    }
  });

  it('the replication slot dropped under a running service: detected, views rebuilt from a new slot', async () => {
    const rig = await startRig('f_slot', { seed: SEED });
    try {
      await rig.untilReady();
      const copy = rig.subscribe('largePaidOrders');
      const seen = watchEngine(rig.service);
      const recoveryMs = await underWorkload(rig, async () => {
        for (;;) {
          await rig.monitor.db.query(`SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, [rig.name]);
          const dropped = await rig.monitor.db.query(`SELECT pg_drop_replication_slot($1)`, [rig.name]).then(
            () => true,
            () => false,
          );
          if (dropped) break;
        }
      });
      expect(seen.rebuilds.join('\n')).toContain('no longer exists');
      expect(copy.counts['RESET']).toBeGreaterThanOrEqual(1);
      record({ fault: 'replication slot dropped while streaming', outcome: 'detected → rebuilt from a new slot', recoveryMs, lostChanges: 0, subscribers: `${copy.summary()}; RESET then a fresh snapshot` });
    } finally {
      await rig.close();
    }
  });

  it('a transaction of hundreds of thousands of rows is applied in short parts: bounded memory, other views keep answering, readers of its views never see half of it', { timeout: 300_000 }, async () => {
    const rig = await startRig('f_huge', { seed: SEED });
    try {
      await rig.untilReady();
      const copy = rig.subscribe('ordersByStatus');
      await rig.monitor.redis.sendCommand(['CONFIG', 'SET', 'slowlog-log-slower-than', '20000']);
      await rig.monitor.redis.sendCommand(['SLOWLOG', 'RESET']);
      // FAULT_HUGE_ROWS=1000000 for the figure in docs/guarantees.md; the suite keeps it quicker.
      const rows = Number(process.env['FAULT_HUGE_ROWS'] ?? 200_000);
      const latencies = { untouched: [] as number[], touched: [] as number[] };
      const counts = new Set<number>();
      let heapPeak = 0;
      let samples = 0;
      let waitedTooLong = 0;
      (globalThis as { gc?: () => void }).gc?.();
      const heapBefore = process.memoryUsage().heapUsed;
      let reading = true;
      // Readers: a view the transaction does not touch, and one it does (its row count must jump at once).
      const readers = (async () => {
        while (reading) {
          let t = performance.now();
          await graphql(rig.service.url, '{ customersByCountryList(first: 10) { nodes { country customers } } }');
          latencies.untouched.push(performance.now() - t);
          t = performance.now();
          // A read of a view inside the transaction waits for its last part (up to 15 s, then says so).
          const data = await graphql<{ ordersByStatus: { orders: string } | null }>(rig.service.url, `{ ordersByStatus(status: "bulk") { orders } }`).catch((error: unknown) => {
            if (!String(error).includes('applying a transaction too large for one step')) throw error;
            waitedTooLong++;
            return null;
          });
          latencies.touched.push(performance.now() - t);
          if (data) counts.add(Number(data.ordersByStatus?.orders ?? 0));
          // What the service retains (garbage collected first, every half second or so).
          if (++samples % 20 === 0) {
            (globalThis as { gc?: () => void }).gc?.();
            heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      const started = Date.now();
      await rig.monitor.db.query(
        `INSERT INTO orders SELECT 1000000 + g, g % 50, 'bulk', 150 + (g % 1000), now() FROM generate_series(1, ${rows}) g`,
      );
      await rig.monitor.db.query(`UPDATE orders SET status = 'paid' WHERE status = 'bulk' AND id % 2 = 0`);
      await rig.sync(180_000);
      const appliedMs = Date.now() - started;
      reading = false;
      await readers;
      await rig.expectConsistent();
      const slowlog = await rig.monitor.redis.sendCommand<[number, number, number, string[]][]>(['SLOWLOG', 'GET', '128']);
      const slowest = Math.max(0, ...slowlog.map((e) => e[2] / 1000));
      const p = (xs: number[], q: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? 0;
      // Readers of the touched view saw the row count before or after each transaction, never between.
      expect([...counts].every((n) => n === 0 || n === rows || n === rows / 2)).toBe(true);
      expect(copy.resets.some((r) => r.includes('too large'))).toBe(true);
      console.log(`[huge] reader latencies (ms) untouched p50 ${p(latencies.untouched, 0.5)} p99 ${p(latencies.untouched, 0.99)}; touched p50 ${p(latencies.touched, 0.5)} p99 ${p(latencies.touched, 0.99)}`);
      const heapGrowthMb = (heapPeak - heapBefore) / 2 ** 20;
      record({
        fault: `a ${rows.toLocaleString('en')}-row INSERT, then a ${(rows / 2).toLocaleString('en')}-row UPDATE, each one transaction`,
        outcome: `survived: applied in parts of 2,000 changes in ${(appliedMs / 1000).toFixed(1)} s; slowest Redis call ${slowest.toFixed(0)} ms; retained heap growth ${Math.max(0, heapGrowthMb).toFixed(0)} MB`,
        recoveryMs: null,
        lostChanges: 0,
        subscribers: `${copy.summary()}; RESET (too large to log row by row) then a snapshot`,
        notes: `reader p50/p99: untouched view ${p(latencies.untouched, 0.5).toFixed(1)}/${p(latencies.untouched, 0.99).toFixed(1)} ms, touched view ${p(latencies.touched, 0.5).toFixed(1)}/${p(latencies.touched, 0.99).toFixed(0)} ms (waits for the last part; ${waitedTooLong} reads gave up after 15 s)`,
      });
      expect(heapGrowthMb).toBeLessThan(400);
    } finally {
      await rig.close();
    }
  });
});
