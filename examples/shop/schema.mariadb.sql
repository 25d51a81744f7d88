-- The example shop in MariaDB (10.11; MySQL 8 reads it too): the same tables and columns as
-- schema.sql, typed so that Debezium's MariaDB connector decodes them to the declared types of
-- examples/shop/views.config.ts (shopTables):
--   INT           → int32                            → int4
--   VARCHAR       → string                           → text
--   DECIMAL(p,s)  → Decimal (exact, scale s)          → numeric
--   TIMESTAMP(6)  → io.debezium.time.ZonedTimestamp  → timestamptz (UTC, microseconds)
-- (DATETIME(6) would arrive as io.debezium.time.MicroTimestamp: a wall clock without a zone, that
-- is `timestamp`, not `timestamptz`.) A binary collation gives text the code-point order and
-- exact equality that the views' SQL (COLLATE "C") assumes. No REPLICA IDENTITY here: the binlog
-- (binlog_row_image=FULL) carries whole old rows.
CREATE TABLE customers (
  id         INT PRIMARY KEY,
  name       VARCHAR(100) NOT NULL,
  country    VARCHAR(100),
  created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE products (
  id       INT PRIMARY KEY,
  name     VARCHAR(100) NOT NULL,
  category VARCHAR(100) NOT NULL,
  price    DECIMAL(10, 2) NOT NULL,
  stock         INT NOT NULL DEFAULT 100,
  reorder_level INT NOT NULL DEFAULT 10
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE orders (
  id          INT PRIMARY KEY,
  customer_id INT NOT NULL,
  status      VARCHAR(32) NOT NULL,
  amount      DECIMAL(12, 2),
  created_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
CREATE TABLE order_items (
  order_id   INT NOT NULL,
  line_no    INT NOT NULL,
  product_id INT NOT NULL,
  quantity   INT NOT NULL,
  unit_price DECIMAL(10, 2) NOT NULL,
  PRIMARY KEY (order_id, line_no)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
