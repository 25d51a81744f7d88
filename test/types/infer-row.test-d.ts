import { expectTypeOf, test } from 'vitest';
import { desc, type InferRow } from 'cdc-views';
import config from '../../examples/shop/views.config.ts';

test('InferRow of a grouped view: group keys and exact aggregates', () => {
  expectTypeOf<InferRow<typeof config.views.revenueByCustomer>>().toEqualTypeOf<{
    customerId: number;
    orders: string;
    revenue: string | null;
    averageOrder: string | null;
    largestOrder: string | null;
    smallestOrder: string | null;
  }>();
});

test('InferRow of a rows view: nullability and computed columns follow the declaration', () => {
  expectTypeOf<InferRow<typeof config.views.largePaidOrders>>().toEqualTypeOf<{
    id: number;
    customerId: number;
    amount: string | null;
    amountWithTax: string | null;
    createdAt: string;
  }>();
});

test('InferRow: count is a BigInt string, sum of int4 is int8 (string), min of timestamptz is a string', () => {
  expectTypeOf<InferRow<typeof config.views.productSales>>().toEqualTypeOf<{
    productId: number;
    lines: string;
    units: string | null;
    revenue: string | null;
  }>();
  expectTypeOf<InferRow<typeof config.views.customersByCountry>>().toEqualTypeOf<{
    country: string | null;
    customers: string;
    firstSignup: string | null;
  }>();
});

test('InferRow of a join: each side keeps its columns’ types; a left join makes the right side nullable', () => {
  expectTypeOf<InferRow<typeof config.views.ordersWithCustomer>>().toEqualTypeOf<{
    orderId: number;
    status: string;
    amount: string | null;
    customer: string;
    country: string | null;
  }>();
  // orders is the nullable side: count(o.id) is still a count, sum(o.amount) may be NULL.
  expectTypeOf<InferRow<typeof config.views.customerOrderCounts>>().toEqualTypeOf<{
    customerId: number;
    name: string;
    orders: string;
    spent: string | null;
  }>();
  expectTypeOf<InferRow<typeof config.views.buyersPerProduct>>().toEqualTypeOf<{ productId: number; buyers: string; lines: string }>();
  expectTypeOf<InferRow<typeof config.views.boughtTogether>>().toEqualTypeOf<{ productId: number; otherProductId: number; orders: string }>();
});

test('InferRow of a top-N over a view: the view’s own row type', () => {
  expectTypeOf<InferRow<typeof config.views.topCustomers>>().toEqualTypeOf<InferRow<typeof config.views.revenueByCustomer>>();
  expectTypeOf<InferRow<typeof config.views.topProductsPerCategory>>().toEqualTypeOf<{
    productId: number;
    category: string;
    units: string | null;
    revenue: string | null;
  }>();
});

test('indexBy takes only the view’s own fields, and keeps the row type', () => {
  const indexed = config.views.topCustomers.indexBy((r) => [desc(r.revenue)], (r) => [r.orders, desc(r.customerId)]);
  expectTypeOf<InferRow<typeof indexed>>().toEqualTypeOf<InferRow<typeof config.views.topCustomers>>();
  // @ts-expect-error: not a field of topCustomers
  config.views.topCustomers.indexBy((r) => [r.amount]);
});
