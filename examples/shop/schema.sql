-- The example shop. REPLICA IDENTITY FULL: aggregate views retract the old row on UPDATE/DELETE.
CREATE TABLE customers (
  id         int4 PRIMARY KEY,
  name       text NOT NULL,
  country    text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE products (
  id       int4 PRIMARY KEY,
  name     text NOT NULL,
  category text NOT NULL,
  price    numeric(10, 2) NOT NULL,
  -- Units in the warehouse, and the level below which the shop reorders (the lowStock view).
  stock         int4 NOT NULL DEFAULT 100,
  reorder_level int4 NOT NULL DEFAULT 10
);
CREATE TABLE orders (
  id          int4 PRIMARY KEY,
  customer_id int4 NOT NULL,
  status      text NOT NULL,
  amount      numeric(12, 2),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE order_items (
  order_id   int4 NOT NULL,
  line_no    int4 NOT NULL,
  product_id int4 NOT NULL,
  quantity   int4 NOT NULL,
  unit_price numeric(10, 2) NOT NULL,
  PRIMARY KEY (order_id, line_no)
);
ALTER TABLE customers REPLICA IDENTITY FULL;
ALTER TABLE products REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE order_items REPLICA IDENTITY FULL;
