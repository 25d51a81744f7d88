/**
 * The example shop: four tables, sixteen views — aggregates, joins, a left join, count distinct,
 * top-N over views, and a self-join — and two reactions: a reorder POSTed to the supplier when a
 * product's stock falls below its reorder level, and an alert when a customer's paid revenue passes
 * 5,000. `npm run demo` runs it against a throwaway PostgreSQL, with a local supplier endpoint.
 */
import {
  and,
  avg,
  count,
  countDistinct,
  crossedAbove,
  crossedBelow,
  defineConfig,
  desc,
  eq,
  gt,
  isNotNull,
  lt,
  max,
  min,
  mul,
  ne,
  reaction,
  source,
  sum,
  table,
  view,
  type ReactionContext,
} from 'cdc-views';

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
      { id: 'int4', name: 'text', category: 'text', price: 'numeric', stock: 'int4', reorder_level: 'int4' },
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
    }))
    // Lists of customers by revenue, or by number of orders, are served from indexes kept in each step.
    .indexBy((r) => [desc(r.revenue)], (r) => [desc(r.orders)]);

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
      }))
      .indexBy((o) => [desc(o.amount)], (o) => [desc(o.createdAt)]),

    /** Units and revenue per product, from order lines. */
    productSales: view(orderItems)
      .groupBy((i) => ({ productId: i.product_id }))
      .select((i) => ({ lines: count(), units: sum(i.quantity), revenue: sum(mul(i.quantity, i.unit_price)) })),

    /** The catalogue per category: price range and average. */
    productsByCategory: view(products)
      .groupBy((p) => ({ category: p.category }))
      .select((p) => ({ products: count(), cheapest: min(p.price), priciest: max(p.price), averagePrice: avg(p.price) })),

    /** Products whose stock fell below their reorder level (a filter comparing two columns). */
    lowStock: view(products)
      .where((p) => lt(p.stock, p.reorder_level))
      .select((p) => ({ id: p.id, category: p.category, stock: p.stock, reorderLevel: p.reorder_level }))
      .indexBy((p) => [p.stock]),

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

const views = shopViews({ customers, products, orders, orderItems });

/**
 * POST a JSON body to the shop's webhook ($SHOP_WEBHOOK_URL + path), with the idempotency key the
 * receiver uses to drop repeats (a reaction runs at least once). Without the variable, only logged.
 */
async function notify(path: string, body: unknown, { idempotencyKey, signal, log }: ReactionContext): Promise<void> {
  const base = process.env['SHOP_WEBHOOK_URL'];
  if (!base) return log(`SHOP_WEBHOOK_URL is not set: not sent to ${path}`, { body });
  const response = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey }, signal });
  // A failure throws: the reaction retries with backoff, then parks the change in its dead letters.
  if (!response.ok) throw new Error(`${base}${path} answered ${response.status}`);
}

export default defineConfig({
  name: 'shop',
  source: source.postgres({ url: process.env['DATABASE_URL'], slot: 'cdc_views_shop', publication: 'cdc_views_shop' }),
  redis: { url: process.env['REDIS_URL'] },
  views,
  reactions: {
    /** Once per fall below the reorder level (not again while it stays low): order enough for twice the level. */
    reorder: reaction(views.lowStock, {
      when: crossedBelow((p) => p.stock, (p) => p.reorderLevel),
      handler: (change, context) => {
        const p = change.row!;
        return notify('/reorders', { productId: p.id, category: p.category, stock: p.stock, reorderLevel: p.reorderLevel, quantity: 2 * p.reorderLevel - p.stock }, context);
      },
    }),
    /** A customer's paid revenue passed 5,000. */
    bigCustomer: reaction(views.revenueByCustomer, {
      when: crossedAbove((r) => r.revenue, 5_000),
      handler: (change, context) => notify('/alerts', { customerId: change.row!.customerId, revenue: change.row!.revenue }, context),
    }),
  },
});
