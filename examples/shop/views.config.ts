/**
 * The example shop: four tables, six views. `npm run demo` runs it against a throwaway PostgreSQL.
 */
import { and, avg, count, defineConfig, eq, gt, isNotNull, max, min, mul, source, sum, table, view } from 'cdc-views';

/**
 * The shop's four tables under a schema (PostgreSQL: 'public') or a database (MySQL/MariaDB, whose
 * tables Debezium names `<database>.<table>`).
 */
export function shopTables(schema: string) {
  return {
    customers: table(
      `${schema}.customers`,
      { id: 'int4', name: 'text', country: 'text?', created_at: 'timestamptz' },
      { key: 'id' },
    ),
    products: table(
      `${schema}.products`,
      { id: 'int4', name: 'text', category: 'text', price: 'numeric' },
      { key: 'id' },
    ),
    orders: table(
      `${schema}.orders`,
      { id: 'int4', customer_id: 'int4', status: 'text', amount: 'numeric?', created_at: 'timestamptz' },
      { key: 'id' },
    ),
    orderItems: table(
      `${schema}.order_items`,
      { order_id: 'int4', line_no: 'int4', product_id: 'int4', quantity: 'int4', unit_price: 'numeric' },
      { key: ['order_id', 'line_no'] },
    ),
  };
}

export type ShopTables = ReturnType<typeof shopTables>;

export const { customers, products, orders, orderItems } = shopTables('public');

/** The shop's six views over the given tables (the same views over MariaDB's `<database>.<table>`). */
export function shopViews({ customers, products, orders, orderItems }: ShopTables) {
  return {
    /** Paid revenue per customer, with exact min/max under refunds and deletes. */
    revenueByCustomer: view(orders)
      .where((o) => eq(o.status, 'paid'))
      .groupBy((o) => ({ customerId: o.customer_id }))
      .select((o) => ({
        orders: count(),
        revenue: sum(o.amount),
        averageOrder: avg(o.amount),
        largestOrder: max(o.amount),
        smallestOrder: min(o.amount),
      })),

    /** Order counts per status; amounts may be NULL (counted by count(*), not by count(amount)). */
    ordersByStatus: view(orders)
      .groupBy((o) => ({ status: o.status }))
      .select((o) => ({ orders: count(), withAmount: count(o.amount), total: sum(o.amount), latest: max(o.created_at) })),

    /** Large paid orders, one row each, with a computed column. */
    largePaidOrders: view(orders)
      .where((o) => and(eq(o.status, 'paid'), gt(o.amount, 100)))
      .select((o) => ({
        id: o.id,
        customerId: o.customer_id,
        amount: o.amount,
        amountWithTax: mul(o.amount, '1.2'),
        createdAt: o.created_at,
      })),

    /** Units and revenue per product, from order lines. */
    productSales: view(orderItems)
      .groupBy((i) => ({ productId: i.product_id }))
      .select((i) => ({ lines: count(), units: sum(i.quantity), revenue: sum(mul(i.quantity, i.unit_price)) })),

    /** The catalogue per category: price range and average. */
    productsByCategory: view(products)
      .groupBy((p) => ({ category: p.category }))
      .select((p) => ({ products: count(), cheapest: min(p.price), priciest: max(p.price), averagePrice: avg(p.price) })),

    /** Customers per country (NULL country is its own group, as in SQL). */
    customersByCountry: view(customers)
      .where((c) => isNotNull(c.name))
      .groupBy((c) => ({ country: c.country }))
      .select((c) => ({ customers: count(), firstSignup: min(c.created_at) })),
  };
}

export default defineConfig({
  name: 'shop',
  source: source.postgres({ url: process.env['DATABASE_URL'], slot: 'cdc_views_shop', publication: 'cdc_views_shop' }),
  redis: { url: process.env['REDIS_URL'] },
  views: shopViews({ customers, products, orders, orderItems }),
});
