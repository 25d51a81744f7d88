-- Sample data for the example shop (deterministic).
INSERT INTO customers (id, name, country, created_at)
SELECT i, 'customer ' || i,
       (ARRAY['DE', 'FR', 'US', 'JP', 'BR', NULL])[1 + (i * 7) % 6],
       timestamptz '2024-01-01 00:00:00+00' + (i * interval '37 minutes 11.123456 seconds')
FROM generate_series(1, 200) i;

INSERT INTO products (id, name, category, price, stock, reorder_level)
SELECT i, 'product ' || i, (ARRAY['books', 'games', 'garden', 'kitchen'])[1 + i % 4], ((i * 37) % 9000 + 100) / 100.0,
       5 + (i * 13) % 60, 10 + 5 * (i % 3)
FROM generate_series(1, 50) i;

INSERT INTO orders (id, customer_id, status, amount, created_at)
SELECT i, 1 + (i * 7919) % 200,
       (ARRAY['paid', 'paid', 'paid', 'new', 'shipped', 'cancelled'])[1 + (i * 31) % 6],
       CASE WHEN i % 50 = 0 THEN NULL ELSE ((i * 7793) % 50000 + 99) / 100.0 END,
       timestamptz '2024-06-01 00:00:00+00' + (i * interval '13 minutes')
FROM generate_series(1, 5000) i;

INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price)
SELECT o, l, 1 + (o * 13 + l * 7) % 50, 1 + (o + l) % 5, ((o * 37 + l) % 9000 + 100) / 100.0
FROM generate_series(1, 5000) o, generate_series(1, 2) l;
