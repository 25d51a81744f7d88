/**
 * The fast lane (api/fast-lane.ts) answers exactly as yoga does: every view of the shop read by key
 * and by page (every field, cursors, versions, `atLeast`) the first time through yoga and then
 * through the fast lane, byte for byte; callers of one role with different claims share a compiled
 * document but never rows; errors, refusals and tokens past their expiry still get yoga's answers.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../views/config.ts';
import { shopTestConfig, startFixture, type ServiceFixture } from '../support/shop.ts';

const SECRET = 'a-test-secret-of-at-least-thirty-two-bytes';
const SEED = `
INSERT INTO customers VALUES (1, 'Ada', 'DE', '2024-01-01 10:00:00.123456+00'), (2, 'Bo', NULL, '2024-02-01 00:00:00+00');
INSERT INTO products VALUES (1, 'p1', 'books', 12.50, 4, 10), (2, 'p2', 'games', 40.00, 50, 10);
INSERT INTO orders VALUES (1, 1, 'paid', 120.10, '2024-03-01 00:00:00+00'), (2, 1, 'paid', NULL, now()), (3, 2, 'paid', 300.00, now()), (4, 2, 'new', 5.55, now());
INSERT INTO order_items VALUES (1, 1, 1, 2, 12.50), (1, 2, 2, 1, 40.00), (3, 1, 2, 3, 40.00);
`;

function laneConfig(databaseUrl: string, redisUrl: string, name: string): Config {
  return {
    ...shopTestConfig(databaseUrl, redisUrl, name),
    api: {
      auth: { jwt: { secret: SECRET }, anonymousRole: 'public' },
      permissions: {
        revenueByCustomer: { customer: { filter: { customerId: { claim: 'customerId' } } }, public: {} },
        ...Object.fromEntries(
          ['ordersByStatus', 'largePaidOrders', 'productSales', 'productsByCategory', 'lowStock', 'customersByCountry', 'ordersWithCustomer', 'customerOrderCounts', 'salesByCategory', 'buyersPerProduct', 'productRevenue', 'topCustomers', 'topProductsPerCategory', 'boughtTogether', 'topPartners'].map((v) => [v, { public: {} }]),
        ),
      },
    },
  } as Config;
}

async function sign(claims: Record<string, unknown>, expiresIn: string | number = '1h'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(expiresIn).sign(new TextEncoder().encode(SECRET));
}

describe('the fast lane', () => {
  let shop: ServiceFixture;

  beforeAll(async () => {
    shop = await startFixture('lane', { seed: SEED, config: laneConfig });
  }, 60_000);
  afterAll(() => shop?.close());

  const post = async (body: unknown, token?: string): Promise<{ status: number; text: string }> => {
    const response = await fetch(shop.service.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return { status: response.status, text: await response.text() };
  };
  const lanes = async (): Promise<{ fast: number; yoga: number }> => {
    const text = await fetch(shop.service.url.replace(/\/graphql$/, '/metrics')).then((r) => r.text());
    const count = (lane: string): number => Number(new RegExp(`cdc_views_graphql_http_requests_total\\{lane="${lane}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    return { fast: count('fast'), yoga: count('yoga') };
  };
  /** Sends the same request twice: the first through yoga, the second through the fast lane; both answers. */
  const twice = async (body: unknown, token?: string): Promise<[{ status: number; text: string }, { status: number; text: string }, number]> => {
    const before = await lanes();
    const first = await post(body, token);
    const second = await post(body, token);
    const after = await lanes();
    return [first, second, after.fast - before.fast];
  };

  it('answers every view, by key and by page, byte for byte as yoga does', async () => {
    for (const view of shop.registry.views) {
      const fields = view.fields.map((f) => f.name).join(' ');
      const page = `query Page($after: String) { ${view.name}List(first: 2, after: $after) { nodes { ${fields} } pageInfo { hasNextPage endCursor } version } }`;
      const [first, second, fast] = await twice({ query: page, operationName: 'Page' });
      expect(second, view.name).toEqual(first);
      expect(first.status).toBe(200);
      expect(fast, `${view.name}: the second page read took the fast lane`).toBe(1);
      const data = JSON.parse(first.text) as { data: Record<string, { nodes: Record<string, unknown>[]; pageInfo: { endCursor: string | null } }> };
      const { nodes, pageInfo } = data.data[`${view.name}List`]!;
      if (pageInfo.endCursor) {
        const [next, nextAgain] = await twice({ query: page, operationName: 'Page', variables: { after: pageInfo.endCursor } });
        expect(nextAgain, `${view.name} after a cursor`).toEqual(next);
      }
      const row = nodes[0];
      if (!row) continue;
      const key = view.keyFields.map((f) => `${f.name}: ${JSON.stringify(row[f.name])}`).join(', ');
      const [one, oneAgain, fastOne] = await twice({ query: `{ ${view.name}(${key}) { ${fields} } }` });
      expect(oneAgain, `${view.name} by key`).toEqual(one);
      expect(fastOne).toBe(1);
      expect((JSON.parse(one.text) as { data: Record<string, unknown> }).data[view.name]).toEqual(row);
    }
  });

  it('answers where, orderBy (indexed and not) and totalCount as yoga does', async () => {
    for (const query of [
      '{ revenueByCustomerList(first: 2, where: { orders: { gt: "0" } }, orderBy: [{ field: revenue, direction: DESC }]) { nodes { customerId revenue } pageInfo { hasNextPage endCursor } totalCount } }',
      '{ largePaidOrdersList(first: 3, where: { or: [{ amount: { gte: "200" } }, { customerId: { in: [1] } }] }, orderBy: [{ field: customerId, direction: ASC }]) { nodes { id customerId amount } totalCount } }',
    ]) {
      const [first, second, fast] = await twice({ query });
      expect(JSON.parse(first.text).errors, query).toBeUndefined();
      expect(second).toEqual(first);
      expect(fast).toBe(1);
    }
    // With the where as a variable (a recursive input type: and/or), as apps send it.
    const body = {
      query: 'query Filtered($where: RevenueByCustomerWhere, $first: Int) { revenueByCustomerList(first: $first, where: $where) { nodes { customerId revenue } totalCount } }',
      variables: { first: 5, where: { or: [{ revenue: { gte: "200" } }, { and: [{ customerId: { in: [1] } }, { orders: { gt: "0" } }] }] } },
    };
    const [first, second, fast] = await twice(body);
    expect(JSON.parse(first.text).errors).toBeUndefined();
    expect(second).toEqual(first);
    expect(fast).toBe(1);
  });

  it('callers of one role share the compiled document, never the rows; a bad variable and a refused token get yoga’s answers', async () => {
    const query = 'query Mine { revenueByCustomerList(first: 10) { nodes { customerId revenue } } }';
    const ada = await sign({ role: 'customer', customerId: 1 });
    const bo = await sign({ role: 'customer', customerId: 2 });
    await post({ query }, ada); // learned
    const before = await lanes();
    const [forAda, forBo] = [await post({ query }, ada), await post({ query }, bo)];
    expect((await lanes()).fast - before.fast).toBe(2);
    expect(JSON.parse(forAda.text)).toEqual({ data: { revenueByCustomerList: { nodes: [{ customerId: 1, revenue: '120.10' }] } } });
    expect(JSON.parse(forBo.text)).toEqual({ data: { revenueByCustomerList: { nodes: [{ customerId: 2, revenue: '300.00' }] } } });

    // A variable of the wrong type: a client error, from yoga, both times.
    const byKey = { query: 'query One($id: Int!) { revenueByCustomer(customerId: $id) { revenue } }', variables: { id: 1 } };
    await post(byKey, ada);
    const [bad, badAgain] = await twice({ ...byKey, variables: { id: 'one' } }, ada);
    expect(badAgain).toEqual(bad);
    expect(JSON.parse(bad.text).errors[0].message).toMatch(/Variable "\$id" got invalid value "one"/);

    // A forged token, and one expired: 401 with the reason, as before the document was learned.
    const forged = `${ada.slice(0, -4)}AAAA`;
    const [refused] = await twice({ query }, forged);
    expect(refused.status).toBe(401);
    const expired = await sign({ role: 'customer', customerId: 1 }, Math.floor(Date.now() / 1000) - 10);
    expect((await post({ query }, expired)).status).toBe(401);
  });

  it('notes the version read at and whether atLeast was reached, as yoga does', async () => {
    await shop.db.query(`INSERT INTO orders VALUES (10, 1, 'paid', 1.00, now())`);
    await shop.sync();
    const version = (JSON.parse((await post({ query: '{ revenueByCustomerList(first: 1) { version } }' })).text) as { data: { revenueByCustomerList: { version: string } } }).data.revenueByCustomerList.version;
    const [first, second, fast] = await twice({ query: `{ revenueByCustomer(customerId: 1, atLeast: "${version}") { revenue } }` });
    expect(fast).toBe(1);
    expect(JSON.parse(second.text)).toEqual(JSON.parse(first.text));
    expect(JSON.parse(first.text).extensions.cdcViews).toMatchObject({ atLeastReached: { revenueByCustomer: true } });
  });
});
