/**
 * The example shop: four tables, fifteen views — aggregates, joins, a left join, count distinct,
 * top-N over views, and a self-join. `npm run demo` runs it against a throwaway PostgreSQL.
 */
import { and, avg, count, countDistinct, defineConfig, desc, eq, gt, isNotNull, max, min, mul, ne, source, sum, table, view } from 'cdc-views';

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

/** The shop's views over the given tables (the same views over MariaDB's `<database>.<table>`). */
export function shopViews({ customers, products, orders, orderItems }: ShopTables) {
  const revenueByCustomer = view(orders)
    .where((o) => eq(o.status, 'paid'))
    .groupBy((o) => ({ customerId: o.customer_id }))
    .select((o) => ({
      orders: count(),
      revenue: sum(o.amount),
      averageOrder: avg(o.amount),
      largestOrder: max(o.amount),
      smallestOrder: min(o.amount),
    }));

  /** Units and revenue per product, with its category (order lines joined to their product). */
  const productRevenue = view(orderItems)
    .join(products, (i, p) => eq(i.product_id, p.id))
    .groupBy((i, p) => ({ productId: p.id, category: p.category }))
    .select((i) => ({ units: sum(i.quantity), revenue: sum(mul(i.quantity, i.unit_price)) }));

  /** How often two products are bought in one order (order lines joined with the other lines of their order). */
  const boughtTogether = view(orderItems.as('a'))
    .join(orderItems.as('b'), (a, b) => and(eq(b.order_id, a.order_id), ne(b.product_id, a.product_id)))
    .groupBy((a, b) => ({ productId: a.product_id, otherProductId: b.product_id }))
    .select(() => ({ orders: count() }));

  return {
    /** Paid revenue per customer, with exact min/max under refunds and deletes. */
    revenueByCustomer,

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

    /** Every order with its customer's name and country (an inner join on the customer's key). */
    ordersWithCustomer: view(orders)
      .join(customers, (o, c) => eq(o.customer_id, c.id))
      .select((o, c) => ({ orderId: o.id, status: o.status, amount: o.amount, customer: c.name, country: c.country })),

    /** Every customer with their number of orders: zero when they have none (a left join, grouped). */
    customerOrderCounts: view(customers)
      .leftJoin(orders, (c, o) => eq(o.customer_id, c.id))
      .groupBy((c) => ({ customerId: c.id, name: c.name }))
      .select((c, o) => ({ orders: count(o.id), spent: sum(o.amount) })),

    /** Revenue and units per product category (order lines joined to their product). */
    salesByCategory: view(orderItems)
      .join(products, (i, p) => eq(i.product_id, p.id))
      .groupBy((i, p) => ({ category: p.category }))
      .select((i) => ({ lines: count(), units: sum(i.quantity), revenue: sum(mul(i.quantity, i.unit_price)) })),

    /** How many different customers bought each product (count distinct over a join). */
    buyersPerProduct: view(orderItems)
      .join(orders, (i, o) => eq(i.order_id, o.id))
      .groupBy((i) => ({ productId: i.product_id }))
      .select((i, o) => ({ buyers: countDistinct(o.customer_id), lines: count() })),

    productRevenue,

    /** The 10 customers with the highest paid revenue (top-N over a view). */
    topCustomers: view(revenueByCustomer)
      .orderBy((r) => [desc(r.revenue)])
      .limit(10),

    /** The 3 best-selling products of each category (top-N per group, over a view over a join). */
    topProductsPerCategory: view(productRevenue)
      .orderBy((p) => [desc(p.revenue)])
      .limit(3, { per: (p) => [p.category] }),

    boughtTogether,

    /** "Frequently bought together": the 5 products bought most often with each product. */
    topPartners: view(boughtTogether)
      .orderBy((p) => [desc(p.orders)])
      .limit(5, { per: (p) => [p.productId] }),
  };
}

export default defineConfig({
  name: 'shop',
  source: source.postgres({ url: process.env['DATABASE_URL'], slot: 'cdc_views_shop', publication: 'cdc_views_shop' }),
  redis: { url: process.env['REDIS_URL'] },
  views: shopViews({ customers, products, orders, orderItems }),
});
