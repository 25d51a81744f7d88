/**
 * `where` compiled to a predicate: SQL's semantics on the view's stored values (exact decimals,
 * NULL matched only by isNull), and every mistake a client can make is a BAD_USER_INPUT naming it.
 */
import { describe, expect, it } from 'vitest';
import config from '../../../examples/shop/views.config.ts';
import { createRegistry } from '../../../views/registry.ts';
import { compileWhere } from '../../../schema/where.ts';

const registry = createRegistry(config);
const revenue = registry.byName.get('revenueByCustomer')!;
const matching = (where: unknown, rows: Record<string, unknown>[]): unknown[] => {
  const compiled = compileWhere(revenue, where, null)!;
  return rows.filter((r) => compiled.test(r as never)).map((r) => r['customerId']);
};
const rows = [
  { customerId: 1, orders: '9007199254740993', revenue: '100.10', largestOrder: null },
  { customerId: 2, orders: '3', revenue: '100.1', largestOrder: '5' },
  { customerId: 3, orders: '9007199254740992', revenue: '-0.000000000000000000001', largestOrder: '7.5' },
  { customerId: 4, orders: '1', revenue: null, largestOrder: null },
];

describe('where', () => {
  it('compares decimals and big integers exactly (1.10 = 1.1; digits beyond a double count)', () => {
    expect(matching({ revenue: { eq: '100.1' } }, rows)).toEqual([1, 2]);
    expect(matching({ orders: { gt: '9007199254740992' } }, rows)).toEqual([1]);
    expect(matching({ revenue: { lt: '0' } }, rows)).toEqual([3]);
    expect(matching({ revenue: { in: ['100.100', '7'] } }, rows)).toEqual([1, 2]);
  });

  it('never matches NULL with a comparison (ne included); isNull does', () => {
    expect(matching({ largestOrder: { ne: '5' } }, rows)).toEqual([3]);
    expect(matching({ largestOrder: { isNull: true } }, rows)).toEqual([1, 4]);
    expect(matching({ largestOrder: { isNull: false } }, rows)).toEqual([2, 3]);
  });

  it('nests and/or; an empty or matches nothing, an empty and everything', () => {
    expect(matching({ or: [{ customerId: { eq: 4 } }, { and: [{ revenue: { gte: '100.1' } }, { largestOrder: { isNull: false } }] }] }, rows)).toEqual([2, 4]);
    expect(matching({ or: [] }, rows)).toEqual([]);
    expect(matching({ and: [] }, rows)).toEqual([1, 2, 3, 4]);
  });

  it('equal filters written differently share a key (subscribers share their evaluation)', () => {
    const a = compileWhere(revenue, { revenue: { gte: '1', lt: '9' }, customerId: { eq: 1 } }, null)!;
    const b = compileWhere(revenue, { customerId: { eq: 1 }, revenue: { lt: '9', gte: '1' } }, null)!;
    expect(a.key).toBe(b.key);
    expect(compileWhere(revenue, { customerId: { eq: 2 } }, null)!.key).not.toBe(a.key);
  });

  it('refuses null operands, hidden fields and oversized filters as client errors naming the place', () => {
    const error = (where: unknown, readable: ReadonlySet<string> | null = null): unknown => {
      try {
        compileWhere(revenue, where, readable);
      } catch (e) {
        return { message: (e as Error).message, code: (e as { extensions: { code: string } }).extensions.code };
      }
      return null;
    };
    expect(error({ or: [{ revenue: { eq: null } }] })).toEqual({ message: 'Expected a value at where.or[0].revenue.eq, but found null (match NULL with isNull: true)', code: 'BAD_USER_INPUT' });
    expect(error({ revenue: { gt: '1' } }, new Set(['customerId']))).toEqual({ message: "Expected a field of revenueByCustomer at where, but found 'revenue'", code: 'BAD_USER_INPUT' });
    expect(error({ revenue: { eq: 'NaN' } })).toEqual({ message: 'Expected a number at where.revenue.eq, but found NaN', code: 'BAD_USER_INPUT' });
    expect(error({ customerId: { in: Array.from({ length: 1001 }, (_, i) => i) } })).toMatchObject({ message: 'Expected at most 1000 values at where.customerId.in, but found 1001' });
    expect(error({ and: Array.from({ length: 101 }, () => ({ customerId: { eq: 1 } })) })).toMatchObject({ message: 'Expected at most 100 comparisons in where, but found more' });
  });
});
