/**
 * Random workloads over the example shop's tables (fast-check): inserts, updates (group-key and
 * primary-key changes included), deletes, NULLs, truncates and rolled-back transactions. Every
 * statement is written so that it cannot fail, so a transaction never aborts by accident.
 *
 *   statement / workload                 PostgreSQL (test/integration/differential.test.ts)
 *   mariadbStatement / mariadbWorkload   the same statements in MariaDB/MySQL's dialect
 *
 * Run each transaction with `transactionSql`: one query string, for PostgreSQL, or for MariaDB over
 * a connection with multipleStatements and the session time zone '+00:00' (its timestamps are
 * written as UTC wall-clock text).
 */
import fc from 'fast-check';

export const STATUSES = ['paid', 'new', 'shipped', 'cancelled'] as const;
export const COUNTRIES = ['DE', 'FR', 'US', null] as const;

export interface Transaction {
  readonly statements: readonly string[];
  /** Ends with ROLLBACK instead of COMMIT (and must leave no trace). */
  readonly rollback: boolean;
}

const amount = fc.option(
  fc.integer({ min: -50_000, max: 500_000 }).map((cents) => (cents / 100).toFixed(2)),
  { nil: null, freq: 5 },
);
/** Microseconds since the epoch, 2023–2025. */
const micros = fc.integer({ min: Date.UTC(2023, 0, 1) * 1000, max: Date.UTC(2026, 0, 1) * 1000 });
/** `'YYYY-MM-DD HH:MM:SS.ffffff'` in UTC. */
const wallClock = (us: number): string =>
  `${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19).replace('T', ' ')}.${String(us % 1_000_000).padStart(6, '0')}`;
/** PostgreSQL: an explicit +00 offset. */
const timestamp = micros.map((us) => `'${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}+00'`);
/** MariaDB: no offset literal; read in the session time zone, which must be '+00:00'. */
const mariadbTimestamp = micros.map((us) => `'${wallClock(us)}'`);
const sqlText = (v: string | null): string => (v === null ? 'NULL' : `'${v}'`);
const orderId = fc.integer({ min: 1, max: 30 });
const customerId = fc.integer({ min: 1, max: 5 });
const lineNo = fc.integer({ min: 1, max: 3 });
const price = fc.integer({ min: 1, max: 99_999 }).map((cents) => (cents / 100).toFixed(2));
const stock = fc.integer({ min: 0, max: 20 });
/** Stock sold or delivered (crossing the reorder level both ways: the lowStock view), or a new reorder level (the same SQL in both dialects). */
const stockChange = fc.oneof(
  fc.record({ id: fc.integer({ min: 1, max: 6 }), delta: fc.integer({ min: -8, max: 8 }) }).map((c) => `UPDATE products SET stock = stock + (${c.delta}) WHERE id = ${c.id}`),
  fc.record({ id: fc.integer({ min: 1, max: 6 }), level: fc.integer({ min: 0, max: 12 }) }).map((c) => `UPDATE products SET reorder_level = ${c.level} WHERE id = ${c.id}`),
);

/** One PostgreSQL statement that cannot fail. */
export const statement: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ id: orderId, customer: customerId, status: fc.constantFrom(...STATUSES), amount, at: timestamp }).map(
      (o) =>
        `INSERT INTO orders VALUES (${o.id}, ${o.customer}, '${o.status}', ${o.amount ?? 'NULL'}, ${o.at}) ON CONFLICT (id) DO UPDATE SET customer_id = EXCLUDED.customer_id, status = EXCLUDED.status, amount = EXCLUDED.amount, created_at = EXCLUDED.created_at`,
    ) },
  { weight: 3, arbitrary: fc.record({ id: orderId, status: fc.constantFrom(...STATUSES) }).map((o) => `UPDATE orders SET status = '${o.status}' WHERE id = ${o.id}`) },
  { weight: 3, arbitrary: fc.record({ id: orderId, amount }).map((o) => `UPDATE orders SET amount = ${o.amount ?? 'NULL'} WHERE id = ${o.id}`) },
  { weight: 2, arbitrary: fc.record({ id: orderId, customer: customerId }).map((o) => `UPDATE orders SET customer_id = ${o.customer} WHERE id = ${o.id}`) },
  { weight: 2, arbitrary: fc.record({ from: orderId, to: orderId }).map(
      (o) => `UPDATE orders SET id = ${o.to} WHERE id = ${o.from} AND NOT EXISTS (SELECT 1 FROM orders WHERE id = ${o.to})`,
    ) },
  { weight: 3, arbitrary: orderId.map((id) => `DELETE FROM orders WHERE id = ${id}`) },
  { weight: 1, arbitrary: fc.constant(`UPDATE orders SET amount = amount + 1 WHERE status = 'paid'`) },
  { weight: 3, arbitrary: fc.record({ order: orderId, line: lineNo, product: fc.integer({ min: 1, max: 4 }), qty: fc.integer({ min: 1, max: 9 }), price }).map(
      (i) =>
        `INSERT INTO order_items VALUES (${i.order}, ${i.line}, ${i.product}, ${i.qty}, ${i.price}) ON CONFLICT (order_id, line_no) DO UPDATE SET product_id = EXCLUDED.product_id, quantity = EXCLUDED.quantity, unit_price = EXCLUDED.unit_price`,
    ) },
  { weight: 1, arbitrary: fc.record({ order: orderId, line: lineNo, to: orderId }).map(
      (i) => `UPDATE order_items SET order_id = ${i.to} WHERE order_id = ${i.order} AND line_no = ${i.line} AND NOT EXISTS (SELECT 1 FROM order_items WHERE order_id = ${i.to} AND line_no = ${i.line})`,
    ) },
  { weight: 1, arbitrary: fc.record({ order: orderId, line: lineNo }).map((i) => `DELETE FROM order_items WHERE order_id = ${i.order} AND line_no = ${i.line}`) },
  { weight: 2, arbitrary: fc.record({ id: fc.integer({ min: 1, max: 8 }), country: fc.constantFrom(...COUNTRIES), at: timestamp }).map(
      (c) => `INSERT INTO customers VALUES (${c.id}, 'c${c.id}', ${sqlText(c.country)}, ${c.at}) ON CONFLICT (id) DO UPDATE SET country = EXCLUDED.country, created_at = EXCLUDED.created_at`,
    ) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 8 }).map((id) => `DELETE FROM customers WHERE id = ${id}`) },
  { weight: 2, arbitrary: fc.record({ id: fc.integer({ min: 1, max: 6 }), category: fc.constantFrom('books', 'games'), price, stock, reorder: fc.integer({ min: 0, max: 12 }) }).map(
      (p) =>
        `INSERT INTO products VALUES (${p.id}, 'p${p.id}', '${p.category}', ${p.price}, ${p.stock}, ${p.reorder}) ON CONFLICT (id) DO UPDATE SET category = EXCLUDED.category, price = EXCLUDED.price, stock = EXCLUDED.stock`,
    ) },
  { weight: 2, arbitrary: stockChange },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 6 }).map((id) => `DELETE FROM products WHERE id = ${id}`) },
  { weight: 1, arbitrary: fc.constantFrom('TRUNCATE orders', 'TRUNCATE order_items', 'TRUNCATE customers, products') },
);

/**
 * The same statements in MariaDB/MySQL's dialect, none of which can fail either:
 * - upserts are `INSERT … ON DUPLICATE KEY UPDATE c = VALUES(c)`;
 * - a primary-key change is `UPDATE IGNORE … SET id = <to>`: MySQL refuses a subquery on the table
 *   being updated (`AND NOT EXISTS (SELECT … FROM orders …)`, error 1093), and IGNORE turns the
 *   duplicate-key error of a taken key into a warning that leaves the row as it was;
 * - timestamps are UTC wall-clock literals (the session time zone must be '+00:00');
 * - TRUNCATE names one table, and commits implicitly in MySQL: the statements before it in the
 *   transaction are committed and the ones after it run on their own, so a ROLLBACK after it
 *   undoes less. The oracle reads the database, so that changes what is expected, not whether the
 *   views must equal it.
 */
export const mariadbStatement: fc.Arbitrary<string> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ id: orderId, customer: customerId, status: fc.constantFrom(...STATUSES), amount, at: mariadbTimestamp }).map(
      (o) =>
        `INSERT INTO orders VALUES (${o.id}, ${o.customer}, '${o.status}', ${o.amount ?? 'NULL'}, ${o.at}) ON DUPLICATE KEY UPDATE customer_id = VALUES(customer_id), status = VALUES(status), amount = VALUES(amount), created_at = VALUES(created_at)`,
    ) },
  { weight: 3, arbitrary: fc.record({ id: orderId, status: fc.constantFrom(...STATUSES) }).map((o) => `UPDATE orders SET status = '${o.status}' WHERE id = ${o.id}`) },
  { weight: 3, arbitrary: fc.record({ id: orderId, amount }).map((o) => `UPDATE orders SET amount = ${o.amount ?? 'NULL'} WHERE id = ${o.id}`) },
  { weight: 2, arbitrary: fc.record({ id: orderId, customer: customerId }).map((o) => `UPDATE orders SET customer_id = ${o.customer} WHERE id = ${o.id}`) },
  { weight: 2, arbitrary: fc.record({ from: orderId, to: orderId }).map((o) => `UPDATE IGNORE orders SET id = ${o.to} WHERE id = ${o.from}`) },
  { weight: 3, arbitrary: orderId.map((id) => `DELETE FROM orders WHERE id = ${id}`) },
  { weight: 1, arbitrary: fc.constant(`UPDATE orders SET amount = amount + 1 WHERE status = 'paid'`) },
  { weight: 3, arbitrary: fc.record({ order: orderId, line: lineNo, product: fc.integer({ min: 1, max: 4 }), qty: fc.integer({ min: 1, max: 9 }), price }).map(
      (i) =>
        `INSERT INTO order_items VALUES (${i.order}, ${i.line}, ${i.product}, ${i.qty}, ${i.price}) ON DUPLICATE KEY UPDATE product_id = VALUES(product_id), quantity = VALUES(quantity), unit_price = VALUES(unit_price)`,
    ) },
  { weight: 1, arbitrary: fc.record({ order: orderId, line: lineNo, to: orderId }).map(
      (i) => `UPDATE IGNORE order_items SET order_id = ${i.to} WHERE order_id = ${i.order} AND line_no = ${i.line}`,
    ) },
  { weight: 1, arbitrary: fc.record({ order: orderId, line: lineNo }).map((i) => `DELETE FROM order_items WHERE order_id = ${i.order} AND line_no = ${i.line}`) },
  { weight: 2, arbitrary: fc.record({ id: fc.integer({ min: 1, max: 8 }), country: fc.constantFrom(...COUNTRIES), at: mariadbTimestamp }).map(
      (c) => `INSERT INTO customers VALUES (${c.id}, 'c${c.id}', ${sqlText(c.country)}, ${c.at}) ON DUPLICATE KEY UPDATE country = VALUES(country), created_at = VALUES(created_at)`,
    ) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 8 }).map((id) => `DELETE FROM customers WHERE id = ${id}`) },
  { weight: 2, arbitrary: fc.record({ id: fc.integer({ min: 1, max: 6 }), category: fc.constantFrom('books', 'games'), price, stock, reorder: fc.integer({ min: 0, max: 12 }) }).map(
      (p) =>
        `INSERT INTO products VALUES (${p.id}, 'p${p.id}', '${p.category}', ${p.price}, ${p.stock}, ${p.reorder}) ON DUPLICATE KEY UPDATE category = VALUES(category), price = VALUES(price), stock = VALUES(stock)`,
    ) },
  { weight: 2, arbitrary: stockChange },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 6 }).map((id) => `DELETE FROM products WHERE id = ${id}`) },
  { weight: 1, arbitrary: fc.constantFrom('TRUNCATE orders', 'TRUNCATE order_items', 'TRUNCATE customers; TRUNCATE products') },
);

/** Transactions of 1–`maxStatements` statements; one in ten rolls back. */
export function transactionsOf(
  statements: fc.Arbitrary<string>,
  { maxTransactions = 30, maxStatements = 6 }: { maxTransactions?: number; maxStatements?: number } = {},
): fc.Arbitrary<Transaction[]> {
  return fc.array(
    fc.record({ statements: fc.array(statements, { minLength: 1, maxLength: maxStatements }), rollback: fc.nat({ max: 9 }).map((n) => n === 0) }),
    { minLength: 1, maxLength: maxTransactions },
  );
}

/** PostgreSQL workloads: transactions of 1–6 statements, up to 30 of them. */
export const workload = transactionsOf(statement);

/** MariaDB/MySQL workloads, shaped like `workload`. */
export const mariadbWorkload = transactionsOf(mariadbStatement);

/** One transaction as one query string (PostgreSQL, or MariaDB with multipleStatements). */
export function transactionSql(t: Transaction): string {
  return `BEGIN; ${t.statements.join('; ')}; ${t.rollback ? 'ROLLBACK' : 'COMMIT'}`;
}
