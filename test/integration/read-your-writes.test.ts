/**
 * Read-your-writes: a query with `atLeast` (a view version, or a PostgreSQL LSN taken after the
 * client's commit) waits until the views hold it, then answers and says whether it was reached;
 * every read says the version it was read at.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startService } from '../../api/service.ts';
import { quietLogger } from '../support/logger.ts';
import { startShop, type ServiceFixture } from '../support/shop.ts';

interface Reply {
  data?: Record<string, unknown>;
  errors?: { message: string; extensions?: { code?: string } }[];
  extensions?: { cdcViews?: { versions?: Record<string, string>; atLeastReached?: Record<string, boolean> } };
}

async function post(url: string, query: string): Promise<Reply> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  return (await response.json()) as Reply;
}

describe('read-your-writes', () => {
  let shop: ServiceFixture;
  beforeAll(async () => {
    shop = await startShop('ryw');
  });
  afterAll(() => shop?.close());

  it('a read with atLeast: <the LSN after my commit> sees my commit, and says it reached it', async () => {
    for (let i = 0; i < 5; i++) {
      await shop.db.query(`INSERT INTO orders VALUES (${100 + i}, ${80 + i}, 'paid', 12.50, now())`);
      const { rows } = await shop.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      // WAL of other databases may come after the commit: a later commit of ours passes the LSN for sure.
      await shop.db.query(`UPDATE customers SET name = name WHERE id = -1; INSERT INTO orders VALUES (${900 + i}, 1, 'new', 1, now())`);
      const reply = await post(shop.service.url, `{ revenueByCustomer(customerId: ${80 + i}, atLeast: "${rows[0]!.lsn}") { orders revenue } }`);
      expect(reply.errors).toBeUndefined();
      expect(reply.data?.['revenueByCustomer']).toEqual({ orders: '1', revenue: '12.50' });
      expect(reply.extensions?.cdcViews?.atLeastReached).toEqual({ revenueByCustomer: true });
      expect(reply.extensions?.cdcViews?.versions?.['revenueByCustomer']).toMatch(/^\d+-\d+$/);
    }
  });

  it('atLeast a version: reached at once when the view holds it; a version it never reaches is waited for (bounded) and said so', async () => {
    const page = await post(shop.service.url, '{ revenueByCustomerList(first: 1) { version atLeastReached } }');
    const version = (page.data?.['revenueByCustomerList'] as { version: string; atLeastReached: null }).version;
    expect((page.data?.['revenueByCustomerList'] as { atLeastReached: unknown }).atLeastReached).toBeNull();
    const held = await post(shop.service.url, `{ revenueByCustomerList(first: 1, atLeast: "${version}") { version atLeastReached } }`);
    expect(held.data?.['revenueByCustomerList']).toEqual({ version, atLeastReached: true });

    const started = Date.now();
    const future = await post(shop.service.url, '{ revenueByCustomerList(first: 1, atLeast: "99999999999999-0") { atLeastReached } }');
    expect(future.data?.['revenueByCustomerList']).toEqual({ atLeastReached: false });
    expect(Date.now() - started, 'waited for it before answering').toBeGreaterThanOrEqual(4000);
  });

  it('a malformed atLeast is the client’s error, named', async () => {
    const reply = await post(shop.service.url, '{ revenueByCustomer(customerId: 1, atLeast: "yesterday") { orders } }');
    expect(reply.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(reply.errors?.[0]?.message).toMatch(/^Expected atLeast to be a version of the view .* but found 'yesterday'$/);
  });

  it('with the ingest stopped, a read with atLeast waits; it answers with the commit once the ingest is back (an --api-only instance)', async () => {
    const api = await startService({ config: shop.config, role: 'api', port: 0, logger: quietLogger() });
    try {
      await shop.service.stop(); // the ingest: nothing is applied now
      await shop.db.query(`INSERT INTO orders VALUES (300, 99, 'paid', 7.00, now())`);
      const { rows } = await shop.db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn');
      const started = Date.now();
      const read = post(api.url, `{ revenueByCustomer(customerId: 99, atLeast: "${rows[0]!.lsn}") { orders revenue } }`);
      await new Promise((r) => setTimeout(r, 1000));
      const ingest = await startService({ config: shop.config, role: 'ingest', port: 0, logger: quietLogger() });
      try {
        await shop.db.query(`INSERT INTO orders VALUES (301, 1, 'new', 1, now())`); // passes the LSN for sure
        const reply = await read;
        expect(Date.now() - started, 'it waited for the ingest').toBeGreaterThanOrEqual(1000);
        expect(reply.data?.['revenueByCustomer']).toEqual({ orders: '1', revenue: '7.00' });
        expect(reply.extensions?.cdcViews?.atLeastReached).toEqual({ revenueByCustomer: true });
      } finally {
        await ingest.stop();
      }
    } finally {
      await api.stop();
    }
  });
});
