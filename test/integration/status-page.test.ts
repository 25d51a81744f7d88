/**
 * The live status page end to end in headless Chromium (Debian's `chromium`, driven by
 * playwright-core): it loads with every view live, its charts and dead letters; the live table of
 * a view changes when a row changes in PostgreSQL; a screenshot is saved.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shopTestConfig, startFixture, type ServiceFixture } from '../support/shop.ts';
import type { Config } from '../../views/config.ts';
import { crossedAbove, reaction } from '../../views/reactions.ts';
import { fixFor, locate } from '../../scripts/provision.ts';

/** Debian's chromium (`npm test` provides it: scripts/provision.ts), or $CHROMIUM. */
function chromiumPath(): string {
  const found = process.env['CHROMIUM'] ?? locate('chromium')?.path;
  if (!found) throw new Error(`No chromium: run ${fixFor('chromium')} (npm test provides it), or set $CHROMIUM`);
  return found;
}

describe('the status page', () => {
  let shop: ServiceFixture;
  let browser: BrowserContext;

  beforeAll(async () => {
    shop = await startFixture('status', {
      seed: `INSERT INTO orders SELECT i, 1 + i % 5, 'paid', i * 10.5, now() FROM generate_series(1, 20) i;`,
      config: (db, redis, name) => {
        const base = shopTestConfig(db, redis, name);
        return { ...base, reactions: { bigOrder: reaction(base.views['revenueByCustomer']!, { when: crossedAbove((r) => r['revenue']!, 1000), handler: async () => undefined }) } } as Config;
      },
    });
    // A fresh user-data dir each run (playwright passes it as --user-data-dir).
    browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'cdc-views-chromium-')), {
      executablePath: chromiumPath(),
      headless: true,
      viewport: { width: 1280, height: 1600 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await shop?.close();
  });

  it('shows every view live, and a view’s rows changing live as PostgreSQL changes; saves a screenshot', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(shop.service.url.replace(/\/graphql$/, '/status?view=revenueByCustomer'));
    for (const view of shop.registry.views) {
      await expect.poll(() => page.locator(`tr[data-view="${view.name}"] td:nth-child(2)`).textContent(), { timeout: 15_000 }).toBe('live');
    }
    await expect.poll(() => page.locator('tr[data-view="revenueByCustomer"] td[data-rows]').textContent()).toBe('5');
    expect(await page.locator('[data-chart]').count()).toBe(2);
    expect(await page.locator('h2', { hasText: 'Dead letters: 0' }).count()).toBe(1);

    // The live table: customer 3's revenue, then a new paid order of theirs arrives over the subscription.
    const cell = page.locator('table[data-live="revenueByCustomer"] tr[data-key="[3]"] td:nth-child(3)');
    await expect.poll(() => cell.textContent(), { timeout: 15_000 }).toBe('399.00');
    await shop.db.query(`INSERT INTO orders VALUES (100, 3, 'paid', 1000.00, now())`);
    await expect.poll(() => cell.textContent(), { timeout: 15_000 }).toBe('1399.00');
    await expect.poll(() => page.locator('table[data-live="revenueByCustomer"] tr[data-key="[3]"]').getAttribute('class')).toBe('flash');
    // A new customer appears, one leaves.
    await shop.db.query(`INSERT INTO orders VALUES (101, 42, 'paid', 1.00, now()); DELETE FROM orders WHERE customer_id = 5`);
    await expect.poll(() => page.locator('table[data-live="revenueByCustomer"] tr[data-key="[42]"]').count(), { timeout: 15_000 }).toBe(1);
    await expect.poll(() => page.locator('table[data-live="revenueByCustomer"] tr[data-key="[5]"]').count()).toBe(0);
    // The reaction: its condition, and the change that crossed (customer 3 went above 1,000) handled.
    const reactionRow = page.locator('tr[data-reaction="bigOrder"]');
    await expect.poll(() => reactionRow.locator('td:nth-child(3)').textContent()).toBe('"revenue" crossed above 1000');
    await expect.poll(() => reactionRow.locator('td[data-handled]').textContent(), { timeout: 15_000 }).not.toBe('0');
    // The charts have the changes applied by now.
    await expect.poll(() => page.locator('[data-lag]').count(), { timeout: 10_000 }).toBe(1);

    const screenshot = join(tmpdir(), 'cdc-views-status-page.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    process.stdout.write(`[status page] screenshot: ${screenshot}\n`);
    expect(errors).toEqual([]);
  }, 90_000);

  it('is off when api.statusPage is false (and, by default, under NODE_ENV=production)', async () => {
    const off = await startFixture('statusoff', { config: (db, redis, name) => ({ ...shopTestConfig(db, redis, name), api: { statusPage: false } }) as Config });
    try {
      for (const path of ['/status', '/status.json', '/status/assets/app.js']) {
        expect((await fetch(off.service.url.replace(/\/graphql$/, path))).status, path).toBe(404);
      }
    } finally {
      await off.close();
    }
  }, 60_000);
});
