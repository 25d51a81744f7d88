import { describe, expect, it } from 'vitest';
import { source } from '../../../ingest/source-options.ts';
import { ConfigError } from '../../../views/errors.ts';
import { avg, count, desc, eq, gt, max, min, sum, table, view, type ViewDef } from '../../../views/define.ts';
import { defineConfig, type Config } from '../../../views/config.ts';
import { createRegistry, tableRequirements } from '../../../views/registry.ts';
import shop from '../../../examples/shop/views.config.ts';

const orders = table('public.orders', { id: 'int4', customer: 'int4', status: 'text', amount: 'numeric?', note: 'json?' }, { key: 'id' });

function issuesOf(views: Record<string, unknown>, extra: Partial<Config> = {}): string[] {
  try {
    createRegistry({ source: source.postgres(), views: views as Record<string, ViewDef>, ...extra });
  } catch (error) {
    if (error instanceof ConfigError) return error.issues.map((i) => `${i.path}: ${i.message}`);
    throw error;
  }
  return [];
}

describe('createRegistry', () => {
  it('compiles the example: kinds, keys, key types, the tables that need old rows', () => {
    const registry = createRegistry(shop);
    const revenue = registry.byName.get('revenueByCustomer')!;
    expect(revenue.kind).toBe('aggregate');
    expect(revenue.keyFields.map((f) => f.name)).toEqual(['customerId']);
    expect(revenue.fields.map((f) => [f.name, f.type, f.nullable])).toEqual([
      ['customerId', 'int4', false],
      ['orders', 'int8', false],
      ['revenue', 'numeric', true],
      ['averageOrder', 'numeric', true],
      ['largestOrder', 'numeric', true],
      ['smallestOrder', 'numeric', true],
    ]);
    expect(registry.byName.get('largePaidOrders')).toMatchObject({ kind: 'rows' });
    expect(registry.byName.get('largePaidOrders')!.keyFields.map((f) => f.name)).toEqual(['id']);
    const requirements = tableRequirements(registry);
    // Views whose operators keep state (aggregates, joins, top-N) retract whole old rows; row views do not.
    expect(requirements.find((t) => t.name === 'public.orders')?.needsOldRowFor).toEqual([
      'revenueByCustomer',
      'ordersByStatus',
      'ordersWithCustomer',
      'customerOrderCounts',
      'buyersPerProduct',
    ]);
  });

  it('lists every problem at once, each with the view and field it concerns', () => {
    expect(
      issuesOf({
        'not-a-name': view(orders).select((o) => ({ id: o.id })),
        noKey: view(orders).select((o) => ({ status: o.status })),
        misspelt: view(orders).where((o) => eq((o as unknown as Record<string, never>)['stauts']!, 'paid')).select((o) => ({ id: o.id })),
        plainInGroup: view(orders).groupBy((o) => ({ customer: o.customer })).select((o) => ({ status: o.status as never })),
        aggregateInRows: view(orders).select((o) => ({ id: o.id, total: sum(o.amount) as never })),
        sumOfText: view(orders).groupBy((o) => ({ customer: o.customer })).select((o) => ({ total: sum(o.status as never) })),
        minOfJson: view(orders).groupBy((o) => ({ customer: o.customer })).select((o) => ({ m: min(o.note) })),
        duplicate: view(orders).groupBy((o) => ({ customer: o.customer })).select(() => ({ customer: count() })),
        comparesTextToNumber: view(orders).where((o) => gt(o.status, o.amount as never)).select((o) => ({ id: o.id })),
        forgotSelect: view(orders).groupBy((o) => ({ customer: o.customer })),
        combinatorNames: view(orders).groupBy((o) => ({ or: o.status })).select(() => ({ and: count() })),
      }),
    ).toEqual([
      "views.not-a-name: Expected a view name usable in GraphQL ([_A-Za-z][_0-9A-Za-z]*), but found 'not-a-name'",
      "views.noKey.select: Expected the primary key column 'id' of public.orders among the selected fields (a view row needs its key), but found none; add e.g. { id: row.id }",
      "views.misspelt.where: Expected a column of public.orders, but found 'stauts' (did you mean 'status'?)",
      'views.plainInGroup.select.status: Expected an aggregate (count, sum, avg, min, max, countDistinct, boolAnd, boolOr) in a grouped view, but found a column; group fields belong in groupBy',
      'views.aggregateInRows.select.total: Expected a plain expression, but found sum(); aggregates belong in the select of a grouped view',
      'views.sumOfText.select.total: Expected sum() of a number, but found an expression of type text',
      'views.minOfJson.select.m: Expected min() of an orderable type, but found json',
      "views.duplicate.select.customer: Field 'customer' is defined twice",
      'views.comparesTextToNumber.where: Expected comparable types in gt(), but found text and numeric',
      'views.forgotSelect: Expected a view built with view(table)….select(…), but found object (did you forget .select(…)?)',
      "views.combinatorNames.groupBy.or: Expected a field name other than 'and' and 'or' (a list's where combines conditions with them), but found 'or': name it otherwise in groupBy or select",
      "views.combinatorNames.select.and: Expected a field name other than 'and' and 'or' (a list's where combines conditions with them), but found 'and': name it otherwise in groupBy or select",
    ]);
  });

  it('checks the api section against the views: auth, roles, permission fields and filters, all problems at once', () => {
    const views = {
      paid: view(orders)
        .where((o) => eq(o.status, 'paid'))
        .select((o) => ({ id: o.id, customer: o.customer, amount: o.amount })),
    };
    const api = (section: unknown) => issuesOf(views, { api: section } as Partial<Config>);
    expect(api({ permissions: { paid: { user: {} } } })).toEqual([
      'api.permissions: Expected api.auth (a JWT secret or JWKS URL, or an anonymousRole) for permissions to apply to, but found none',
    ]);
    expect(
      api({
        auth: { jwt: { secret: 'short', jwksUrl: 'ftp://keys' }, anonymousRole: 'bad role' },
        permissions: {
          unpaid: { user: {} },
          paid: {
            user: { filter: { customer: { claim: 'tenant' }, amount: { claim: 'x' }, missing: 1 }, fields: ['amount', 'nope'], maxPageSize: 5000 },
          },
        },
      }),
    ).toEqual([
      'api.auth.jwt: Expected a secret or a jwksUrl, but found both',
      'api.auth.jwt.secret: Expected an HS256 secret of at least 32 bytes, but found 5',
      "api.auth.jwt.jwksUrl: Expected an http(s) URL, but found 'ftp://keys'",
      "api.auth.anonymousRole: Expected a role name of letters, digits, '_', '.', ':' or '-', but found 'bad role'",
      "api.permissions.unpaid: Expected the name of a declared view, but found 'unpaid' (views: paid)",
      'api.permissions.paid.user.filter.amount: Expected a field of type bool, int2, int4, int8, text, varchar, bpchar, uuid to filter by, but amount is numeric',
      "api.permissions.paid.user.filter.missing: Expected a field of paid (id, customer, amount), but found 'missing'",
      "api.permissions.paid.user.fields: Expected fields of paid (id, customer, amount), but found 'nope'",
      'api.permissions.paid.user.fields: Expected the key fields of paid among the fields (rows are addressed by them), but id missing',
      'api.permissions.paid.user.maxPageSize: Expected an integer from 1 to 1000, but found 5000',
    ]);
    expect(api({ auth: { jwt: { secret: 'x'.repeat(32) } }, permissions: { paid: { user: { filter: { customer: { claim: 'tenant' } } } } } })).toEqual([]);
  });

  it('checks the redis section: numbers in range, known durability modes, all problems at once', () => {
    const views = { all: view(orders).select((o) => ({ id: o.id })) };
    const redis = (section: unknown) => issuesOf(views, { redis: section } as Partial<Config>);
    expect(redis({ leaseTtlMs: 1500, changelogMaxLength: 10, fanoutChunk: 2, durability: { mode: 'none', require: false } })).toEqual([]);
    expect(
      redis({
        leaseTtlMs: '5s',
        changelogMaxLength: 2 ** 32,
        fanoutChunk: 0.5,
        durability: { mode: 'fsync', replicas: 0, timeoutMs: -1, require: 'yes' },
      }),
    ).toEqual([
      'redis.leaseTtlMs: Expected an integer from 100 to 3,600,000, but found "5s"',
      'redis.changelogMaxLength: Expected an integer from 1 to 4,294,967,295, but found 4294967296',
      'redis.fanoutChunk: Expected an integer from 1 to 1,000,000, but found 0.5',
      'redis.durability.mode: Expected one of auto, always, waitaof, delayed, replicas, none, but found "fsync"',
      'redis.durability.replicas: Expected an integer from 1 to 100, but found 0',
      'redis.durability.timeoutMs: Expected an integer from 1 to 3,600,000, but found -1',
      'redis.durability.require: Expected true or false, but found "yes"',
    ]);
  });

  it('checks the table declarations and the source', () => {
    const bad = table('orders', { id: 'int4?', price: 'money' as never }, { key: ['id', 'missing' as never] });
    expect(
      issuesOf({ v: view(bad).select((o) => ({ id: o.id })) }, { source: { kind: 'postgres', slot: 'Bad-Slot' }, name: 'bad name' }),
    ).toEqual([
      "name: Expected a name of letters, digits, '_' or '-', but found 'bad name'",
      "source.slot: Expected a lower-case PostgreSQL identifier (a-z, 0-9, _), but found 'Bad-Slot'",
      "views.v.from: Expected a schema-qualified table name like 'public.orders', but found 'orders'",
      "views.v.from.columns.price: Expected a column type (int4, int8, numeric, text, timestamptz, …), but found 'money'",
      "views.v.from.key: Expected key column 'id' to be NOT NULL, but it is declared 'int4?'",
      "views.v.from.key: Expected key column 'missing' to be a declared column of orders",
    ]);
  });

  it('gives each view a fingerprint that changes with its definition only', () => {
    const a = createRegistry(defineConfig({ source: source.postgres(), views: { v: view(orders).groupBy((o) => ({ c: o.customer })).select((o) => ({ n: count(), m: max(o.amount) })) } }));
    const b = createRegistry(defineConfig({ source: source.postgres(), views: { v: view(orders).groupBy((o) => ({ c: o.customer })).select((o) => ({ n: count(), m: max(o.amount) })) } }));
    const c = createRegistry(defineConfig({ source: source.postgres(), views: { v: view(orders).groupBy((o) => ({ c: o.customer })).select((o) => ({ n: count(), m: avg(o.amount) })) } }));
    expect(a.views[0]!.fingerprint).toBe(b.views[0]!.fingerprint);
    expect(a.views[0]!.fingerprint).not.toBe(c.views[0]!.fingerprint);
  });

  it("a table's declared key is part of the fingerprint: a join's state holds its rows by that key, even when the view is grouped", () => {
    const customers = table('public.customers', { id: 'int4', name: 'text' }, { key: 'id' });
    const fingerprint = (key: 'id' | 'status'): string => {
      const keyed = table('public.orders', { id: 'int4', customer: 'int4', status: 'text' }, { key });
      const v = view(keyed)
        .join(customers, (o, c) => eq(c.id, o.customer))
        .groupBy((o, c) => ({ name: c.name }))
        .select(() => ({ n: count() }));
      return createRegistry({ source: source.postgres(), views: { v } }).byName.get('v')!.fingerprint;
    };
    // Served from state kept under the old key, deleted rows would stay joined: the view is rebuilt instead.
    expect(fingerprint('id')).toBe(fingerprint('id'));
    expect(fingerprint('id')).not.toBe(fingerprint('status'));
  });

  it('indexBy: orderings of the view’s own fields, each listed as a problem otherwise; they are part of the fingerprint', () => {
    const rows = view(orders).select((o) => ({ id: o.id, amount: o.amount, note: o.note }));
    const untyped = rows as unknown as { indexBy: (...o: ((r: Record<string, never>) => unknown[])[]) => ViewDef };
    expect(issuesOf({ v: untyped.indexBy((r) => [r['colour']], (r) => [r['note']], (r) => [r['amount'], desc(r['amount'] as never)], () => []) })).toEqual([
      "views.v.indexBy.0: Expected fields of v (id, amount, note), but found 'colour'",
      'views.v.indexBy.1: Expected a field with an order, but note is json',
      'views.v.indexBy.2: Expected each field once per ordering, but found amount twice',
      'views.v.indexBy.3: Expected at least one field to order by',
    ]);
    expect(issuesOf({ v: rows.indexBy((r) => [desc(r.amount)], (r) => [desc(r.amount)]) })).toEqual(['views.v.indexBy.1: Expected each ordering once, but found amount:desc twice']);
    const fingerprint = (v: ViewDef): string => createRegistry({ source: source.postgres(), views: { v } }).byName.get('v')!.fingerprint;
    const indexed = createRegistry({ source: source.postgres(), views: { v: rows.indexBy((r) => [desc(r.amount), r.id]) } }).byName.get('v')!;
    expect(indexed.orderings).toEqual([{ signature: 'amount:desc,id:asc', terms: [{ field: 'amount', type: 'numeric', desc: true }, { field: 'id', type: 'int4', desc: false }] }]);
    expect(fingerprint(rows.indexBy((r) => [desc(r.amount)]))).not.toBe(fingerprint(rows));
    expect(fingerprint(rows.indexBy((r) => [desc(r.amount)]))).not.toBe(fingerprint(rows.indexBy((r) => [r.amount])));
  });
});
