/**
 * `npm run bench:probe` (bench/probe.ts) keeps working: on the suite's servers, a tiny catch-up is
 * measured, its events are the rows the workload changed, Redis's time is split into its commands'
 * own and the rest, and every view's cost is listed.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';

const run = promisify(execFile);

describe('bench:probe', () => {
  it('measures a catch-up and lists what each view cost', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bench/probe.ts'], {
      env: {
        ...process.env,
        DATABASE_URL: inject('databaseUrl'),
        REDIS_URL: inject('redisUrl'),
        PROBE_ORDERS: '300',
        PROBE_TXNS: '15',
        PROBE_VIEWS: 'ordersByStatus,largePaidOrders,customersByCountry',
      },
    });
    // 15 transactions of 50 rows (inserts, updates, deletes of order lines, two per order), but the
    // last delete meets orders 351–375, which have no lines: 700 events, not 750.
    expect(stdout).toMatch(
      /^catch-up of 700 events into 3 views in [\d.]+ s: service CPU [\d.]+ s, Redis CPU [\d.]+ s: [\d,]+ events per CPU-second$/m,
    );
    // The service's CPU by thread (Linux /proc): the main thread's share is most of it, never all of the process's.
    const threads =
      /^ {2}service CPU by thread: main ([\d.]+) s, others \(V8's compiler and collector helpers\) ([\d.]+) s$/m.exec(
        stdout,
      );
    expect(threads).not.toBeNull();
    expect(Number(threads![1])).toBeGreaterThan(0);
    // Redis's CPU per event, and the commands' own share of it (the write step's hash writes among them).
    const redis =
      /^ {2}Redis per event: ([\d.]+) µs of CPU, ([\d.]+) µs of it in the commands themselves \((.*)\)$/m.exec(
        stdout,
      );
    expect(redis).not.toBeNull();
    expect(Number(redis![2])).toBeGreaterThan(0);
    expect(redis![3]).toMatch(/\bhset [\d.]+/);
    expect(stdout).toMatch(/^ {2}largePaidOrders +[\d.]+ s planning, [1-9][\d.]* writes per event$/m);
    expect(stdout).toMatch(/^ {2}customersByCountry +0\.000 s planning, 0\.00 writes per event$/m);
  }, 120_000);
});
