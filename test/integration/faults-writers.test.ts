/**
 * One writer at a time: a second instance started against the same deployment waits for the
 * lease (serving reads meanwhile) and takes over when the first stops; a writer paused past its
 * lease (SIGSTOP) wakes up fenced and writes nothing; a rolling deploy with a changed config hands
 * over cleanly. After each: every view and a subscriber's copy equal SQL.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { count, view } from '../../views/define.ts';
import { orders } from '../../examples/shop/views.config.ts';
import { startChildService, writeShopConfig } from '../support/child-service.ts';
import { faultTable, record, startRig, watchEngine } from '../support/faults.ts';
import { graphql } from '../support/shop.ts';

const SEED = `INSERT INTO orders SELECT g, g % 5 + 1, CASE WHEN g % 3 = 0 THEN 'paid' ELSE 'new' END, (g % 400) + 0.5, now() FROM generate_series(1, 300) g`;

afterAll(() => console.log(`\n${faultTable()}\n`));

describe('one writer at a time', () => {
  it('a second instance waits for the lease while serving reads, and takes over when the first stops', async () => {
    const rig = await startRig('f_second', { seed: SEED });
    try {
      await rig.untilReady();
      const second = await rig.startInstance();
      const seen = watchEngine(second);
      rig.workload.start();
      await new Promise((r) => setTimeout(r, 1000));
      expect(second.engine.health().state).toBe('waiting-for-lease');
      // The waiting instance serves the same views from Redis.
      // (The workload's own TRUNCATE orders can empty the view for a moment: read until it holds rows.)
      let read = { ordersByStatusList: { nodes: [] as unknown[] } };
      for (const deadline = Date.now() + 5000; read.ordersByStatusList.nodes.length === 0 && Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
        read = await graphql<{ ordersByStatusList: { nodes: unknown[] } }>(second.url, '{ ordersByStatusList(first: 5) { nodes { status orders } } }');
      }
      expect(read.ordersByStatusList.nodes.length).toBeGreaterThan(0);
      const started = Date.now();
      await rig.service.stop();
      rig.service = second;
      const copy = rig.subscribe('largePaidOrders');
      await rig.sync();
      await rig.untilReady();
      const recoveryMs = Date.now() - started;
      await new Promise((r) => setTimeout(r, 800));
      await rig.workload.stop();
      await rig.sync();
      await rig.expectConsistent();
      expect(seen.rebuilds).toEqual([]);
      expect(rig.log().join('')).toContain('another instance writes this deployment; waiting for its lease');
      record({ fault: 'a second instance started on the same deployment; the first stopped', outcome: 'second waited (serving reads), then took over and resumed', recoveryMs, lostChanges: 0, subscribers: copy.summary() });
    } finally {
      await rig.close();
    }
  });

  it('a writer paused past its lease (SIGSTOP) wakes up fenced: it writes nothing, the instance that took over carries on', async () => {
    const rig = await startRig('f_paused', { seed: SEED });
    try {
      await rig.untilReady();
      // The rig's own instance steps back; a child process becomes the writer, then is paused.
      await rig.service.stop();
      const child = await startChildService(writeShopConfig(rig.databaseUrl, rig.redisServer.url, rig.name));
      try {
        await rig.untilReady({ url: child.url } as never);
        rig.workload.start();
        await new Promise((r) => setTimeout(r, 800));
        child.process.kill('SIGSTOP');
        const started = Date.now();
        rig.service = await rig.startInstance();
        const seen = watchEngine(rig.service);
        const copy = rig.subscribe('largePaidOrders');
        await rig.sync(60_000);
        await rig.untilReady();
        const recoveryMs = Date.now() - started;
        // The paused writer wakes up: its next step must be refused.
        child.process.kill('SIGCONT');
        await new Promise((r) => setTimeout(r, 2500));
        await rig.workload.stop();
        await rig.sync();
        await rig.expectConsistent();
        expect(seen.rebuilds).toEqual([]);
        expect(child.output()).toMatch(/another writer holds this deployment now|waiting for its lease/);
        record({
          fault: 'the writer paused (SIGSTOP) past its lease, another instance took over, then the paused one woke up',
          outcome: 'the woken writer was fenced (its steps refused); the new one resumed, taking the slot over',
          recoveryMs,
          lostChanges: 0,
          subscribers: copy.summary(),
        });
      } finally {
        child.process.kill('SIGCONT');
        child.process.kill('SIGKILL');
      }
    } finally {
      await rig.close();
    }
  });

  it('a rolling deploy with a changed config: the new instance waits, serves the unchanged views, then takes over and builds only the new view', async () => {
    const rig = await startRig('f_deploy', { seed: SEED });
    try {
      await rig.untilReady();
      const base = rig.config();
      const changed = { ...base, views: { ...base.views, paidOrdersPerCustomer: view(orders).groupBy((o) => ({ customerId: o.customer_id })).select(() => ({ orders: count() })) } };
      rig.workload.start();
      await new Promise((r) => setTimeout(r, 800));
      const next = await rig.startInstance(changed);
      const seen = watchEngine(next);
      await new Promise((r) => setTimeout(r, 500));
      expect(next.engine.health().state).toBe('waiting-for-lease');
      // While the old version writes, the new one serves the views both define alike, and says why not the new one.
      const same = await graphql<{ ordersByStatusList: { nodes: unknown[] } }>(next.url, '{ ordersByStatusList(first: 5) { nodes { status } } }');
      // Served (an error would have thrown); it may be empty right after the workload's TRUNCATE.
      expect(Array.isArray(same.ordersByStatusList.nodes)).toBe(true);
      const response = await fetch(next.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ paidOrdersPerCustomerList(first: 5) { nodes { customerId } } }' }),
      });
      expect(JSON.stringify(await response.json())).toContain('VIEW_UNAVAILABLE');
      const started = Date.now();
      await rig.service.stop(); // SIGTERM of the old version: it releases the lease
      rig.service = next;
      const copy = rig.subscribe('largePaidOrders');
      await rig.sync(60_000);
      await rig.untilReady();
      const recoveryMs = Date.now() - started;
      await new Promise((r) => setTimeout(r, 800));
      await rig.workload.stop();
      await rig.sync();
      await rig.expectConsistent();
      const { createRegistry } = await import('../../views/registry.ts');
      const { expectViewsEqualSql } = await import('../support/shop.ts');
      await expectViewsEqualSql(next.url, rig.monitor.db, createRegistry(changed));
      // Only the new view was built (backfilled); the others went on from where the old version left them.
      expect(seen.rebuilds).toEqual([]);
      record({
        fault: 'rolling deploy with a changed config (a view added)',
        outcome: 'new instance waited, served unchanged views, then took the lease and backfilled only the new view while the others stayed live; the old one wrote nothing after',
        recoveryMs,
        lostChanges: 0,
        subscribers: copy.summary(),
      });
    } finally {
      await rig.close();
    }
  });
});
