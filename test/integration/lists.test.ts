/**
 * List queries with where, orderBy and totalCount against the real service, PostgreSQL as the
 * oracle: after random workloads, every random filter and order (indexed, or sorted in memory on a
 * small view), walked page by page, equals `SELECT * FROM (<view sql>) v WHERE … ORDER BY …, key`
 * on the source — for a grouped view, a join, a top-N over a view and a plain rows view. Cursors
 * keep their place under concurrent updates; mistakes are client errors saying what to do;
 * a tenant's filter is ANDed into every page and count; filtered subscriptions see rows enter and
 * leave as inserts and deletes.
 */
import fc from 'fast-check';
import { createClient, type Client } from 'graphql-ws';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { customers, orders, products } from '../../examples/shop/views.config.ts';
import type { ColumnType, Value } from '../../core/values.ts';
import { count, desc, eq, max, sum, view } from '../../views/define.ts';
import type { Config } from '../../views/config.ts';
import type { CompiledView } from '../../views/registry.ts';
import { countList } from '../../views/store/list.ts';
import { indexKey, keyPrefix, orderingKey } from '../../views/store/keys.ts';
import { memberKey } from '../../core/encoding.ts';
import { expectedRows, listQuery, walkList, type Comparison, type OrderBy, type Where } from '../support/list-oracle.ts';
import { shopTestConfig, startFixture, type ServiceFixture } from '../support/shop.ts';
import { statement, transactionSql, transactionsOf } from '../support/workload.ts';

const SECRET = 'a-test-secret-of-at-least-thirty-two-bytes';
const SORT_IN_MEMORY_ROWS = 60;

function config(databaseUrl: string, redisUrl: string, name: string): Config {
  const paidRevenue = view(orders)
    .where((o) => eq(o.status, 'paid'))
    .groupBy((o) => ({ customerId: o.customer_id }))
    .select((o) => ({ orders: count(), revenue: sum(o.amount), largest: max(o.amount), latest: max(o.created_at) }))
    .indexBy((r) => [desc(r.revenue)], (r) => [r.largest, desc(r.latest)]);
  const views = {
    paidRevenue,
    /** A join: every order with its customer. */
    orderLines: view(orders)
      .join(customers, (o, c) => eq(o.customer_id, c.id))
      .select((o, c) => ({ orderId: o.id, customerId: o.customer_id, status: o.status, amount: o.amount, createdAt: o.created_at, name: c.name, country: c.country }))
      .indexBy((r) => [desc(r.amount)], (r) => [r.country, desc(r.createdAt)]),
    /** A top-N over a view. */
    topPaid: view(paidRevenue)
      .orderBy((r) => [desc(r.revenue)])
      .limit(3)
      .indexBy((r) => [r.orders]),
    /** A rows view, made large by the tests that need one. */
    catalogue: view(products)
      .select((p) => ({ id: p.id, name: p.name, category: p.category, price: p.price }))
      .indexBy((p) => [desc(p.price)], (p) => [p.category, p.name]),
  };
  return {
    ...shopTestConfig(databaseUrl, redisUrl, name),
    views,
    api: {
      limits: { sortInMemoryRows: SORT_IN_MEMORY_ROWS },
      auth: { jwt: { secret: SECRET }, anonymousRole: 'public' },
      permissions: {
        paidRevenue: { public: {} },
        orderLines: { public: {}, tenant: { filter: { customerId: { claim: 'customerId' } }, fields: ['orderId', 'customerId', 'status', 'amount', 'createdAt', 'country'] } },
        topPaid: { public: {} },
        catalogue: { public: {} },
      },
    },
  } as Config;
}

/** Values of a field's type for filters: a random one, or one of the view's current rows (so eq hits). */
const micros = fc.integer({ min: Date.UTC(2023, 0, 1) * 1000, max: Date.UTC(2026, 0, 1) * 1000 });
const RANDOM: Partial<Record<ColumnType, fc.Arbitrary<Value>>> = {
  int4: fc.integer({ min: 0, max: 35 }),
  int8: fc.integer({ min: 0, max: 8 }).map(String),
  numeric: fc.oneof(
    fc.integer({ min: -50_000, max: 500_000 }).map((c) => (c / 100).toFixed(2)),
    fc.integer({ min: -50_000, max: 500_000 }).map((c) => `${(c / 100).toFixed(2)}0000000000000000001`),
    fc.constantFrom('0', '-0.000000000000000000001', '100'),
  ),
  text: fc.constantFrom('DE', 'FR', 'US', 'paid', 'new', 'shipped', 'c1', 'c3', '', 'Z', 'é'),
  timestamptz: micros.map((us) => `${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}`.replace(/\.?0+$/, '') + 'Z'),
};
/** A value of a row, or one a hair above it (decimals: equal as doubles, not as numbers), or a random one. */
type Operand = { pick: number; hair: boolean } | { value: Value };
const operand = (type: ColumnType): fc.Arbitrary<Operand> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.record({ pick: fc.nat(), hair: type === 'numeric' ? fc.boolean() : fc.constant(false) }) },
    { weight: 2, arbitrary: RANDOM[type]!.map((value) => ({ value })) },
  );
const hairAbove = (v: Value): Value => (typeof v === 'string' && !v.startsWith('-') ? `${v}${v.includes('.') ? '' : '.'}00000000000000000001` : v);

type Spec = { field: string; op: string; operand: Operand | Operand[] | boolean };
type WhereSpec = { leaf: Spec } | { and: WhereSpec[] } | { or: WhereSpec[] };

function whereArb(v: CompiledView): fc.Arbitrary<WhereSpec | null> {
  const leaf = fc.constantFrom(...v.fields).chain((f) =>
    fc.oneof(
      fc.record({ field: fc.constant(f.name), op: fc.constantFrom('eq', 'ne', 'lt', 'lte', 'gt', 'gte'), operand: operand(f.type) }),
      fc.record({ field: fc.constant(f.name), op: fc.constant('in'), operand: fc.array(operand(f.type), { maxLength: 3 }) }),
      fc.record({ field: fc.constant(f.name), op: fc.constant('isNull'), operand: fc.boolean() }),
    ).map((leaf): WhereSpec => ({ leaf })),
  );
  const level = fc.oneof(leaf, fc.array(leaf, { maxLength: 3 }).map((and): WhereSpec => ({ and })), fc.array(leaf, { maxLength: 3 }).map((or): WhereSpec => ({ or })));
  return fc.option(fc.oneof(level, fc.array(level, { maxLength: 2 }).map((or): WhereSpec => ({ or }))), { nil: null, freq: 4 });
}

function orderArb(v: CompiledView): fc.Arbitrary<OrderBy | null> {
  const indexed = v.orderings.map((o) => o.terms.map((t) => ({ field: t.field, direction: t.desc ? ('DESC' as const) : ('ASC' as const) })));
  const any = fc.uniqueArray(fc.record({ field: fc.constantFrom(...v.fields.map((f) => f.name)), direction: fc.constantFrom('ASC' as const, 'DESC' as const) }), { minLength: 1, maxLength: 2, selector: (t) => t.field });
  return fc.oneof(fc.constant(null), ...(indexed.length ? [fc.constantFrom(...indexed)] : []), any);
}

/** The where as GraphQL takes it, with picks resolved against the view's rows (NULL picks fall back to a value). */
function resolveWhere(v: CompiledView, spec: WhereSpec, rows: readonly Record<string, Value>[]): Where {
  if ('and' in spec) return { and: spec.and.map((s) => resolveWhere(v, s, rows)) };
  if ('or' in spec) return { or: spec.or.map((s) => resolveWhere(v, s, rows)) };
  const { field, op } = spec.leaf;
  const type = v.fields.find((f) => f.name === field)!.type;
  const value = (o: Operand): Value => {
    if ('value' in o) return o.value;
    const picked = rows[o.pick % Math.max(rows.length, 1)]?.[field] ?? (type === 'text' ? 'x' : type === 'int4' ? 1 : type === 'timestamptz' ? '2024-01-01T00:00:00Z' : '1');
    return o.hair ? hairAbove(picked) : picked;
  };
  const comparison: Comparison = op === 'isNull' ? { isNull: spec.leaf.operand as boolean } : op === 'in' ? { in: (spec.leaf.operand as Operand[]).map(value) } : { [op]: value(spec.leaf.operand as Operand) };
  return { [field]: comparison };
}

/** Rows for the workload to change: views of a few dozen rows, NULLs, ties, microseconds. */
const SEED = `
INSERT INTO customers (id, name, country, created_at) SELECT i, 'c' || i, (ARRAY['DE', 'FR', 'US', NULL])[1 + i % 4], timestamptz '2024-01-01 00:00:00+00' + i * interval '1 day 0.000123 seconds' FROM generate_series(1, 8) i;
INSERT INTO products (id, name, category, price) SELECT i, 'p' || i, (ARRAY['books', 'games'])[1 + i % 2], (i * 7 % 5) + 0.5 FROM generate_series(1, 6) i;
INSERT INTO orders (id, customer_id, status, amount, created_at) SELECT i, 1 + i % 5, (ARRAY['paid', 'paid', 'new', 'shipped', 'cancelled'])[1 + i % 5],
  CASE WHEN i % 7 = 0 THEN NULL ELSE (i * 1237 % 50000) / 100.0 END, timestamptz '2024-06-01 00:00:00+00' + i * interval '1 hour 0.000001 seconds' FROM generate_series(1, 30) i;`;

function sign(claims: Record<string, unknown>): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
}

describe('lists: where, orderBy, totalCount', () => {
  let shop: ServiceFixture;
  let url: string;
  const viewOf = (name: string): CompiledView => shop.registry.byName.get(name)!;
  beforeAll(async () => {
    shop = await startFixture('lists', { config, seed: SEED });
    url = shop.service.url;
  });
  afterAll(() => shop?.close());

  it('after random workloads, random where + orderBy walked page by page equal SQL (indexed and in-memory orders, four view shapes), and so does totalCount', async () => {
    const names = ['paidRevenue', 'orderLines', 'topPaid', 'catalogue'];
    const query = fc.constantFrom(...names).chain((name) => {
      const v = shop.registry.byName.get(name)!;
      return fc.record({ name: fc.constant(name), where: whereArb(v), orderBy: orderArb(v), first: fc.integer({ min: 1, max: 5 }) });
    });
    let checked = 0;
    await fc.assert(
      fc.asyncProperty(transactionsOf(statement, { maxTransactions: 8 }), fc.array(query, { minLength: 6, maxLength: 8 }), async (transactions, queries) => {
        for (const t of transactions) await shop.db.query(transactionSql(t));
        await shop.sync();
        for (const q of queries) {
          const v = viewOf(q.name);
          const all = await expectedRows(shop.db, v, null, null);
          const where = q.where === null ? null : resolveWhere(v, q.where, all);
          const expected = await expectedRows(shop.db, v, where, q.orderBy);
          const actual = await walkList(url, v, where, q.orderBy, q.first);
          const what = `${v.name}List(where: ${JSON.stringify(where)}, orderBy: ${JSON.stringify(q.orderBy)}, first: ${q.first})`;
          expect(actual.rows, what).toEqual(expected);
          expect(actual.totalCount, `${what} totalCount`).toBe(expected.length);
          checked++;
        }
        // Every ordering index holds exactly the view's rows (a truncate, a delete, a key change leave nothing behind).
        for (const name of names) {
          const v = viewOf(name);
          const keys = await shop.redis.sendCommand<string[]>(['ZRANGE', indexKey(keyPrefix(shop.name), name), '0', '-1']);
          for (const o of v.orderings) {
            const members = await shop.redis.sendCommand<string[]>(['ZRANGE', orderingKey(keyPrefix(shop.name), name, o.signature), '0', '-1']);
            expect(members.map(memberKey).sort(), `${name} ${o.signature}`).toEqual([...keys].sort());
          }
        }
      }),
      { numRuns: 25 },
    );
    expect(checked).toBeGreaterThanOrEqual(150);
  });

  /** Catalogue larger than the in-memory sort bound. */
  async function largeCatalogue(): Promise<void> {
    await shop.db.query(`INSERT INTO products (id, name, category, price) SELECT i, 'product ' || i, (ARRAY['books', 'games', 'garden'])[1 + i % 3], ((i * 37) % 9000 + 100) / 100.0 FROM generate_series(1000, 1079) i ON CONFLICT (id) DO NOTHING`);
    await shop.sync();
  }

  it('an order the view does not index is refused on a view larger than api.limits.sortInMemoryRows, naming the indexBy to declare; indexed orders still page it', async () => {
    await largeCatalogue();
    const catalogue = viewOf('catalogue');
    const refused = await listQuery(url, catalogue, { orderBy: [{ field: 'name', direction: 'DESC' }, { field: 'price', direction: 'ASC' }], first: 5 });
    expect(refused.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(refused.errors?.[0]?.message).toMatch(
      /^Expected an indexed orderBy for catalogueList \(price DESC; category ASC, name ASC\): it holds more than 60 rows \(api\.limits\.sortInMemoryRows\) to sort per request\. Declare \.indexBy\(\(r\) => \[desc\(r\.name\), r\.price\]\) on view catalogue$/,
    );
    for (const orderBy of [[{ field: 'price', direction: 'DESC' }], [{ field: 'category', direction: 'ASC' }, { field: 'name', direction: 'ASC' }], [{ field: 'id', direction: 'ASC' }]] as OrderBy[]) {
      const where: Where = { price: { gte: '20' }, or: [{ category: { eq: 'books' } }, { category: { eq: 'garden' } }] };
      const walked = await walkList(url, catalogue, where, orderBy, 9);
      expect(walked.rows).toEqual(await expectedRows(shop.db, catalogue, where, orderBy));
      expect(walked.totalCount).toBe(walked.rows.length);
    }
    // Without a filter the count is the view's size (O(1)); with one, it is counted within the scan budget only.
    const [{ n }] = (await shop.db.query<{ n: string }>('SELECT count(*) AS n FROM products')).rows as [{ n: string }];
    expect((await walkList(url, catalogue, null, null, 100)).totalCount).toBe(Number(n));
    const keep = (row: Record<string, Value>): boolean => row['category'] === 'books';
    expect(await countList(shop.redis, keyPrefix(shop.name), catalogue, keep, 10)).toEqual({ count: null, rowCount: Number(n) });
    expect((await countList(shop.redis, keyPrefix(shop.name), catalogue, keep)).count).toBe((await expectedRows(shop.db, catalogue, { category: { eq: 'books' } }, null)).length);
  });

  it('cursors keep their place under concurrent updates: a row that did not change is neither repeated nor skipped (indexed and in-memory orders)', async () => {
    await largeCatalogue();
    await shop.db.query(`INSERT INTO customers (id, name, country, created_at) VALUES (500, 'c500', 'SE', now()) ON CONFLICT (id) DO NOTHING`);
    await shop.db.query(`DELETE FROM orders WHERE id BETWEEN 2000 AND 2100`);
    await shop.db.query(`INSERT INTO orders (id, customer_id, status, amount, created_at) SELECT i, 500, 'paid', i - 1990, now() FROM generate_series(2001, 2020) i`);
    await shop.sync();
    const cases: [CompiledView, OrderBy, string, string, string][] = [
      // indexed: catalogue by price DESC (80+ rows)
      [viewOf('catalogue'), [{ field: 'price', direction: 'DESC' }], 'products', 'price', 'id'],
      // sorted in memory: orderLines (at most 50 rows) by status, then amount DESC
      [viewOf('orderLines'), [{ field: 'status', direction: 'ASC' }, { field: 'amount', direction: 'DESC' }], 'orders', 'amount', 'orderId'],
    ];
    for (const [v, orderBy, table, column, keyField] of cases) {
      const where: Where | null = v.name === 'orderLines' ? { customerId: { eq: 500 } } : null;
      const first = await listQuery(url, v, { where, orderBy, first: 6 });
      expect(first.errors).toBeUndefined();
      const page = first.data![`${v.name}List`]!;
      const seen = page.nodes.map((r) => r[keyField]);
      const before = await expectedRows(shop.db, v, where, orderBy);
      const unseen = before.map((r) => r[keyField]).filter((k) => !seen.includes(k));
      // Move a seen row to the end, an unseen one to the front, delete one, insert one.
      const [movedBack, movedFront, deleted] = [seen[1], unseen.at(-2), unseen.at(-4)];
      const id = 'id';
      await shop.db.query(
        `BEGIN; UPDATE ${table} SET ${column} = 0.01 WHERE ${id} = ${movedBack}; UPDATE ${table} SET ${column} = 999999 WHERE ${id} = ${movedFront}; DELETE FROM ${table} WHERE ${id} = ${deleted}; ` +
          (table === 'products' ? `INSERT INTO products (id, name, category, price) VALUES (1500, 'new', 'books', 50.5)` : `INSERT INTO orders (id, customer_id, status, amount, created_at) VALUES (2050, 500, 'paid', 5.5, now())`) +
          '; COMMIT',
      );
      await shop.sync();
      const rest: Value[] = [];
      let after = page.pageInfo.endCursor;
      for (let pages = 0; after !== null && pages < 100; pages++) {
        const next = await listQuery(url, v, { where, orderBy, first: 7, after });
        expect(next.errors).toBeUndefined();
        const p = next.data![`${v.name}List`]!;
        rest.push(...p.nodes.map((r) => r[keyField]!));
        after = p.pageInfo.hasNextPage ? p.pageInfo.endCursor : null;
      }
      const changed = new Set([movedBack, movedFront, deleted]);
      const untouched = before.map((r) => r[keyField]).filter((k) => !changed.has(k));
      const all = [...seen, ...rest];
      for (const k of untouched) expect(all.filter((x) => x === k), `${v.name}: ${String(k)} once`).toHaveLength(1);
      expect(rest, `${v.name}: the moved-back row comes again at its new place`).toContain(movedBack);
      expect(all, `${v.name}: the row moved before the cursor is not seen again`).not.toContain(movedFront);
      expect(all).not.toContain(deleted);
      // What follows the cursor is exactly the rows after it in SQL order now.
      const now = (await expectedRows(shop.db, v, where, orderBy)).map((r) => r[keyField]);
      expect(rest).toEqual(now.slice(now.indexOf(seen.at(-1)!) + 1));
    }
  });

  it('bad where, orderBy and cursors are client errors that say what is wrong', async () => {
    await shop.db.query(`INSERT INTO orders (id, customer_id, status, amount, created_at) VALUES (2900, 1, 'paid', 5, now()) ON CONFLICT (id) DO NOTHING`);
    await largeCatalogue();
    const catalogue = viewOf('catalogue');
    const paid = viewOf('paidRevenue');
    const error = async (v: CompiledView, variables: Parameters<typeof listQuery>[2]): Promise<{ message: string; code: string | undefined }> => {
      const reply = await listQuery(url, v, variables);
      expect(reply.errors, JSON.stringify(variables)).toBeDefined();
      return { message: reply.errors![0]!.message, code: reply.errors![0]!.extensions?.code };
    };
    expect(await error(catalogue, { after: 'not-a-cursor' })).toEqual({ message: "Expected after to be a cursor from a page of catalogueList (pageInfo.endCursor or an edge's cursor), but found 'not-a-cursor'", code: 'BAD_USER_INPUT' });
    const byPrice = (await listQuery(url, catalogue, { orderBy: [{ field: 'price', direction: 'DESC' }], first: 2 })).data!['catalogueList']!.pageInfo.endCursor;
    expect(await error(catalogue, { orderBy: [{ field: 'category', direction: 'ASC' }, { field: 'name', direction: 'ASC' }], after: byPrice })).toEqual({
      message: 'Expected after to be a cursor of catalogueList in orderBy category:asc,name:asc, but found one in orderBy price:desc: a cursor keeps its place only in its own order',
      code: 'BAD_USER_INPUT',
    });
    expect(await error(catalogue, { after: byPrice })).toMatchObject({ message: expect.stringMatching(/in key order \(no orderBy\), but found one in orderBy price:desc/), code: 'BAD_USER_INPUT' });
    const paidCursor = (await listQuery(url, paid, { first: 1 })).data!['paidRevenueList']!.pageInfo.endCursor;
    expect(await error(catalogue, { after: paidCursor })).toEqual({ message: 'Expected after to be a cursor from a page of catalogueList, but found one of paidRevenueList', code: 'BAD_USER_INPUT' });
    expect(await error(catalogue, { orderBy: [{ field: 'price', direction: 'ASC' }, { field: 'price', direction: 'DESC' }] })).toEqual({ message: 'Expected each field once in orderBy, but found price twice', code: 'BAD_USER_INPUT' });
    expect(await error(catalogue, { where: { price: { eq: null } } })).toEqual({ message: 'Expected a value at where.price.eq, but found null (match NULL with isNull: true)', code: 'BAD_USER_INPUT' });
    expect(await error(catalogue, { where: { price: { gt: 'cheap' } } })).toMatchObject({ message: expect.stringMatching(/Decimal expected text like '1234\.50', but found "cheap"/) });
    expect(await error(catalogue, { where: { colour: { eq: 'red' } } })).toMatchObject({ message: expect.stringMatching(/"colour" is not defined by type "CatalogueWhere"/) });
    expect(await error(catalogue, { orderBy: [{ field: 'colour', direction: 'ASC' }] })).toMatchObject({ message: expect.stringMatching(/Value "colour" does not exist in "CatalogueField" enum/) });
    expect(await error(catalogue, { first: 1001 })).toEqual({ message: 'Expected first to be between 0 and 1000, but found 1001', code: 'BAD_USER_INPUT' });
  });

  it("a tenant's row filter is ANDed into every where, page and count; hidden fields cannot be filtered or ordered by", async () => {
    const lines = viewOf('orderLines');
    const fields = ['orderId', 'customerId', 'status', 'amount', 'createdAt', 'country'];
    await shop.db.query(`INSERT INTO customers (id, name, country, created_at) VALUES (501, 'c501', 'SE', now()), (502, 'c502', NULL, now()) ON CONFLICT (id) DO NOTHING`);
    await shop.db.query(`INSERT INTO orders (id, customer_id, status, amount, created_at) SELECT i, 501 + i % 2, (ARRAY['paid', 'new'])[1 + i % 2], i % 97, now() FROM generate_series(2200, 2240) i ON CONFLICT (id) DO NOTHING`);
    await shop.sync();
    const token = await sign({ role: 'tenant', customerId: 501 });
    const pick = (rows: Record<string, Value>[]): Record<string, Value>[] => rows.map((r) => Object.fromEntries(fields.map((f) => [f, r[f]!])));
    const where: Where = { amount: { gte: '10' } };
    const orderBy: OrderBy = [{ field: 'amount', direction: 'DESC' }];
    const mine = await walkList(url, lines, where, orderBy, 4, { token, fields });
    const expected = pick(await expectedRows(shop.db, lines, where, orderBy, 'v."customerId" = 501'));
    expect(expected.length).toBeGreaterThan(4);
    expect(mine.rows).toEqual(expected);
    expect(mine.totalCount).toBe(expected.length);
    const theirs = await walkList(url, lines, { customerId: { eq: 502 } }, null, 10, { token, fields });
    expect(theirs).toMatchObject({ rows: [], totalCount: 0 });
    const all = await walkList(url, lines, null, null, 1000, { token, fields });
    expect(all.totalCount).toBe((await expectedRows(shop.db, lines, null, null, 'v."customerId" = 501')).length);
    const hidden = await listQuery(url, lines, { where: { name: { eq: 'c502' } } }, { token, fields });
    expect(hidden.errors?.[0]?.message).toMatch(/"name" is not defined by type "OrderLinesWhere"/);
    const hiddenOrder = await listQuery(url, lines, { orderBy: [{ field: 'name', direction: 'ASC' }] }, { token, fields });
    expect(hiddenOrder.errors?.[0]?.message).toMatch(/Value "name" does not exist in "OrderLinesField" enum/);

    // A page and a filtered count asked again are kept while the view holds their version, never
    // past a change; another tenant with the same where has its own.
    const count = async (t: string): Promise<number | null | undefined> => (await walkList(url, lines, where, orderBy, 1000, { token: t, fields })).totalCount;
    const firstPage = async (): Promise<Record<string, Value>[]> => (await walkList(url, lines, where, orderBy, 1000, { token, fields })).rows;
    expect(await count(token)).toBe(expected.length);
    expect(await count(token)).toBe(expected.length);
    expect(await firstPage()).toEqual(expected);
    expect(await firstPage()).toEqual(expected);
    await shop.db.query(`INSERT INTO orders (id, customer_id, status, amount, created_at) VALUES (2241, 501, 'paid', 50, now())`);
    await shop.sync();
    expect(await count(token)).toBe(expected.length + 1);
    expect(await firstPage()).toEqual(pick(await expectedRows(shop.db, lines, where, orderBy, 'v."customerId" = 501')));
    const other = await sign({ role: 'tenant', customerId: 502 });
    expect(await count(other)).toBe((await expectedRows(shop.db, lines, where, orderBy, 'v."customerId" = 502')).length);
  });
});

describe('filtered subscriptions', () => {
  let shop: ServiceFixture;
  const clients: Client[] = [];
  beforeAll(async () => {
    shop = await startFixture('listsubs', { config, seed: `INSERT INTO customers (id, name, country, created_at) VALUES (100, 'c100', 'SE', now())` });
  });
  afterAll(async () => {
    for (const c of clients) await c.dispose();
    await shop?.close();
  });

  type Event = { op: string; key: { orderId: number }; row: { orderId: number; amount: string } | null };
  function subscribe(query: string): Event[] {
    const client = createClient({ url: shop.service.url.replace('http', 'ws'), webSocketImpl: WebSocket, retryAttempts: 0 });
    clients.push(client);
    const events: Event[] = [];
    client.subscribe({ query }, { next: ({ data }) => data && events.push(Object.values(data)[0] as Event), error: (e) => events.push({ op: `error ${JSON.stringify(e)}` } as Event), complete: () => undefined });
    return events;
  }
  const until = async (check: () => boolean, what: string): Promise<void> => {
    for (const deadline = Date.now() + 10_000; !check(); await new Promise((r) => setTimeout(r, 20))) if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
  };

  it('a row that starts matching arrives as INSERT, one that stops as DELETE (key, no row); others never arrive; resuming with since and a snapshot filter the same way', async () => {
    const start = (await listQuery(shop.service.url, shop.registry.byName.get('orderLines')!, { first: 0 })).data!['orderLinesList']!.version;
    const selection = 'op key { orderId } row { orderId amount }';
    const where = '{ amount: { gt: "100" }, status: { in: ["paid", "new"] } }';
    const live = subscribe(`subscription { orderLinesChanges(where: ${where}) { ${selection} } }`);
    const twin = subscribe(`subscription { orderLinesChanges(where: { status: { in: ["paid", "new"] }, amount: { gt: "100.00" } }) { ${selection} } }`);
    await new Promise((r) => setTimeout(r, 300));
    for (const sql of [
      `INSERT INTO orders (id, customer_id, status, amount, created_at) VALUES (3001, 100, 'paid', 50, now())`, // not matching: nothing
      `UPDATE orders SET amount = 150 WHERE id = 3001`, // enters: INSERT
      `UPDATE orders SET amount = 200 WHERE id = 3001`, // still matching: UPDATE
      `UPDATE orders SET status = 'cancelled' WHERE id = 3001`, // leaves: DELETE
      `DELETE FROM orders WHERE id = 3001`, // not matching: nothing
      `INSERT INTO orders (id, customer_id, status, amount, created_at) VALUES (3002, 100, 'new', 300.5, now())`, // INSERT
    ]) {
      await shop.db.query(sql);
      await shop.sync();
    }
    const expected = [
      { op: 'INSERT', key: { orderId: 3001 }, row: { orderId: 3001, amount: '150.00' } },
      { op: 'UPDATE', key: { orderId: 3001 }, row: { orderId: 3001, amount: '200.00' } },
      { op: 'DELETE', key: { orderId: 3001 }, row: null },
      { op: 'INSERT', key: { orderId: 3002 }, row: { orderId: 3002, amount: '300.50' } },
    ];
    await until(() => live.length >= expected.length && twin.length >= expected.length, 'the changes');
    await new Promise((r) => setTimeout(r, 200));
    expect(live).toEqual(expected);
    expect(twin).toEqual(expected);
    const resumed = subscribe(`subscription { orderLinesChanges(where: ${where}, since: "${start}") { ${selection} } }`);
    await until(() => resumed.length >= expected.length, 'the resumed changes');
    await new Promise((r) => setTimeout(r, 200));
    expect(resumed).toEqual(expected);
    // A snapshot holds only the matching rows.
    await shop.db.query(`INSERT INTO orders (id, customer_id, status, amount, created_at) VALUES (3003, 100, 'paid', 99.99, now()), (3004, 100, 'cancelled', 500, now()), (3005, 100, 'paid', 100.01, now())`);
    await shop.sync();
    const snapshot = subscribe(`subscription { orderLinesChanges(where: ${where}, snapshot: true) { ${selection} } }`);
    await until(() => snapshot.length >= 2, 'the snapshot');
    await new Promise((r) => setTimeout(r, 200));
    expect(snapshot).toEqual([
      { op: 'SNAPSHOT', key: { orderId: 3002 }, row: { orderId: 3002, amount: '300.50' } },
      { op: 'SNAPSHOT', key: { orderId: 3005 }, row: { orderId: 3005, amount: '100.01' } },
    ]);
  });
});
