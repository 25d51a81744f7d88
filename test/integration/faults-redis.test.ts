/**
 * Faults of Redis under a steady workload: restarts with and without persistence, SIGKILL under
 * each persistence mode, a restore from an older snapshot, maxmemory, and the network to Redis cut.
 * After each: every view and a subscriber's copy equal SQL (nothing lost, nothing doubled), and
 * what the service did is recorded for docs/guarantees.md.
 */
import { cpSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { faultTable, record, startRig, watchEngine, type Rig } from '../support/faults.ts';
import { graphql } from '../support/shop.ts';
import { scratchDir } from '../support/child-service.ts';
import { shopTestConfig as shopConfigFor } from '../support/shop.ts';

const SEED = `INSERT INTO orders SELECT g, g % 5 + 1, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'new' END, (g % 400) + 0.5, now() FROM generate_series(1, 300) g`;

afterAll(() => console.log(`\n${faultTable()}\n`));

/**
 * Let the workload run, inject the fault, then measure the time to recover: until a change
 * committed right after the fault is in the views and /ready answers 200. Then let the workload
 * run on and check everything.
 */
async function underWorkload(rig: Rig, inject: () => Promise<void>, options: { after?: () => Promise<void> } = {}): Promise<{ recoveryMs: number }> {
  rig.workload.start();
  await new Promise((r) => setTimeout(r, 1000));
  const started = Date.now();
  await inject();
  await rig.sync(120_000);
  await rig.untilReady();
  const recoveryMs = Date.now() - started;
  await options.after?.();
  await new Promise((r) => setTimeout(r, 800));
  await rig.workload.stop();
  await rig.sync();
  await rig.expectConsistent();
  return { recoveryMs };
}

describe('faults of Redis', () => {
  it('Redis restarted without persistence (SIGKILL, comes back empty): detected, views rebuilt, subscribers reset', async () => {
    const rig = await startRig('f_nopersist', { seed: SEED });
    try {
      await rig.untilReady();
      const copy = rig.subscribe('largePaidOrders');
      const seen = watchEngine(rig.service);
      const { recoveryMs } = await underWorkload(rig, async () => {
        await rig.redisServer.kill();
        await rig.redisServer.restart();
      });
      expect(seen.rebuilds.join('\n')).toContain("Redis lost this deployment's state");
      expect(copy.counts['RESET']).toBeGreaterThanOrEqual(1);
      record({ fault: 'Redis SIGKILLed and restarted without persistence (empty)', outcome: 'detected → rebuilt from a fresh snapshot', recoveryMs, lostChanges: 0, subscribers: `${copy.summary()}; a RESET, then a fresh snapshot` });
    } finally {
      await rig.close();
    }
  });

  it('Redis with appendfsync always, restarted cleanly and SIGKILLed: survived, nothing rebuilt', async () => {
    const rig = await startRig('f_always', { seed: SEED, redis: { appendonly: true, appendfsync: 'always' } });
    try {
      expect(rig.service.engine.health().durability?.mode).toBe('always');
      await rig.untilReady();
      const copy = rig.subscribe('largePaidOrders');
      const seen = watchEngine(rig.service);
      const restart = await underWorkload(rig, () => rig.redisServer.restart());
      rig.workload.start();
      const before = { ...copy.counts };
      const kill = await underWorkload(rig, async () => {
        await rig.redisServer.kill();
        await rig.redisServer.restart();
      });
      expect(seen.rebuilds).toEqual([]);
      // The workload's own TRUNCATEs start the view over; nothing else may.
      expect(copy.resets.filter((r) => !r.includes('truncated')), 'resets').toEqual([]);
      record({ fault: 'Redis restarted (SHUTDOWN), appendfsync always', outcome: 'survived: writes retried, resumed', recoveryMs: restart.recoveryMs, lostChanges: 0, subscribers: 'no reset; changes continue' });
      record({ fault: 'Redis SIGKILLed, appendfsync always', outcome: 'survived: resumed from its checkpoint', recoveryMs: kill.recoveryMs, lostChanges: 0, subscribers: `${copy.summary(before)}; no reset` });
    } finally {
      await rig.close();
    }
  });

  it('Redis with appendfsync everysec, SIGKILLed: at most its last second is lost, never acknowledged, so the views catch up exactly', async () => {
    const rig = await startRig('f_everysec', { seed: SEED, redis: { appendonly: true, appendfsync: 'everysec' } });
    try {
      const mode = rig.service.engine.health().durability?.mode;
      expect(['waitaof', 'delayed']).toContain(mode);
      await rig.untilReady();
      const copy = rig.subscribe('largePaidOrders');
      const seen = watchEngine(rig.service);
      const { recoveryMs } = await underWorkload(rig, async () => {
        await rig.redisServer.kill();
        await rig.redisServer.restart();
      });
      expect(seen.rebuilds).toEqual([]);
      record({
        fault: `Redis SIGKILLed, appendfsync everysec (${mode} acknowledgement)`,
        outcome: seen.lost.length > 0 ? 'detected (Redis lost its last second) → resumed: the source resent it' : 'survived: resumed from its checkpoint',
        recoveryMs,
        lostChanges: 0,
        subscribers: copy.summary(),
      });
    } finally {
      await rig.close();
    }
  });

  it('Redis restored from an older snapshot: detected (it holds less than PostgreSQL was acknowledged), views rebuilt', async () => {
    const rig = await startRig('f_olddump', { seed: SEED });
    try {
      await rig.untilReady();
      const copy = rig.subscribe('largePaidOrders');
      const seen = watchEngine(rig.service);
      rig.workload.start();
      await new Promise((r) => setTimeout(r, 800));
      // A backup taken now …
      const lastSave = await rig.monitor.redis.sendCommand<number>(['LASTSAVE']);
      await rig.monitor.redis.sendCommand(['BGSAVE']);
      while ((await rig.monitor.redis.sendCommand<number>(['LASTSAVE'])) === lastSave) await new Promise((r) => setTimeout(r, 20));
      const backup = join(mkdtempSync(join(scratchDir(), 'redis-backup-')), 'data');
      cpSync(rig.redisServer.dataDir, backup, { recursive: true });
      await rig.workload.stop();
      // … restored after more changes were applied and acknowledged.
      const { recoveryMs } = await underWorkload(rig, () => rig.redisServer.restart({ from: backup }));
      expect(seen.lost.length + seen.rebuilds.length).toBeGreaterThan(0);
      expect(seen.rebuilds.join('\n')).toMatch(/acknowledged|went back/);
      record({ fault: 'Redis restored from an older snapshot (BGSAVE, more changes, restart from it)', outcome: 'detected → rebuilt (PostgreSQL will not resend what it was acknowledged)', recoveryMs, lostChanges: 0, subscribers: `${copy.summary()}; RESET then a fresh snapshot` });
    } finally {
      await rig.close();
    }
  });

  it('Redis at maxmemory: writes pause (/ready 503, retrying), reads go on, and it catches up once memory is there', async () => {
    const rig = await startRig('f_maxmem', { seed: SEED });
    try {
      await rig.untilReady();
      const copy = rig.subscribe('largePaidOrders');
      const seen = watchEngine(rig.service);
      let readsDuring = 0;
      let notReadyDuring = false;
      const { recoveryMs } = await underWorkload(rig, async () => {
        const used = await rig.monitor.redis.sendCommand<string>(['INFO', 'memory']);
        const bytes = Number(/used_memory:(\d+)/.exec(used)![1]);
        await rig.monitor.redis.sendCommand(['CONFIG', 'SET', 'maxmemory', String(bytes)]);
        const until = Date.now() + 2500;
        while (Date.now() < until) {
          const data = await graphql<{ ordersByStatusList: { nodes: unknown[] } }>(rig.service.url, '{ ordersByStatusList(first: 10) { nodes { status } } }');
          // Answered (the view may be empty: the workload truncates tables now and then).
          if (Array.isArray(data.ordersByStatusList.nodes)) readsDuring++;
          const ready = await fetch(rig.service.url.replace('/graphql', '/ready'));
          if (ready.status === 503) notReadyDuring = true;
          await new Promise((r) => setTimeout(r, 100));
        }
        await rig.monitor.redis.sendCommand(['CONFIG', 'SET', 'maxmemory', '0']);
      });
      expect(notReadyDuring).toBe(true);
      expect(readsDuring).toBeGreaterThan(5);
      expect(seen.rebuilds).toEqual([]);
      record({ fault: 'Redis at maxmemory (noeviction) for 2.5 s', outcome: 'survived: writes retried, /ready 503 meanwhile, reads served', recoveryMs, lostChanges: 0, subscribers: `${copy.summary()}; no reset` });
    } finally {
      await rig.close();
    }
  });

  it('a burst larger than the changelog keeps: a live subscriber is told (RESET, fresh snapshot), never silently short', async () => {
    const rig = await startRig('f_burst', {
      seed: SEED,
      config: (databaseUrl, redisUrl, name) => {
        const base = shopConfigFor(databaseUrl, redisUrl, name);
        return { ...base, redis: { ...base.redis, changelogMaxLength: 50 } };
      },
    });
    try {
      await rig.untilReady();
      const copy = rig.subscribe('largePaidOrders');
      await new Promise((r) => setTimeout(r, 300));
      // Four transactions changing 500 rows of the view each (each small enough to be logged row by
      // row): far more entries than the changelog keeps.
      for (let i = 0; i < 4; i++) {
        await rig.monitor.db.query(`INSERT INTO orders SELECT 5000 + g, 1, 'paid', 500 + g, now() FROM generate_series(${i * 500 + 1}, ${i * 500 + 500}) g`);
      }
      await rig.sync();
      await rig.expectConsistent();
      expect(copy.resets.join('\n')).toContain('trimmed from the changelog');
      record({ fault: 'a burst of 2,000 changes with a changelog of ~50 entries', outcome: 'detected (entry numbers jump) → live subscribers reset', recoveryMs: null, lostChanges: 0, subscribers: `${copy.summary()}; RESET then a fresh snapshot` });
    } finally {
      await rig.close();
    }
  });

  it('the network to Redis cut for 3 s: writes and reads fail fast, then everything resumes', async () => {
    const rig = await startRig('f_netcut', { seed: SEED, proxy: true });
    try {
      await rig.untilReady();
      const copy = rig.subscribe('largePaidOrders');
      const seen = watchEngine(rig.service);
      let readError = '';
      const { recoveryMs } = await underWorkload(rig, async () => {
        rig.proxy!.cut();
        await new Promise((r) => setTimeout(r, 500));
        const response = await fetch(rig.service.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: '{ ordersByStatusList(first: 1) { nodes { status } } }' }),
        });
        readError = JSON.stringify(await response.json());
        await new Promise((r) => setTimeout(r, 2500));
        rig.proxy!.restore();
      });
      expect(readError).toContain('STORE_UNAVAILABLE');
      expect(seen.rebuilds).toEqual([]);
      record({ fault: 'network to Redis cut for 3 s (TCP proxy)', outcome: 'survived: reads answered STORE_UNAVAILABLE, writes retried, lease re-taken', recoveryMs, lostChanges: 0, subscribers: copy.summary() });
    } finally {
      await rig.close();
    }
  });
});
