-- 0009: flash sales (秒杀).  A sale offers `quantity` units of one SKU of one store at a sale
-- price between two instants, at most `per_user_limit` to a customer.  `taken` counts the
-- units held by the sale's orders that are not closed unpaid: the CHECK makes the database
-- itself refuse to sell more than the quantity, in any process.  The units also come out of
-- the store's inventory like any order's.
CREATE TABLE flash_sales (
    id                 INTEGER PRIMARY KEY,
    store_id           INTEGER NOT NULL REFERENCES stores (id),
    sku_id             INTEGER NOT NULL REFERENCES skus (id),
    title              TEXT    NOT NULL,
    price_fen          INTEGER NOT NULL CHECK (price_fen > 0),
    quantity           INTEGER NOT NULL CHECK (quantity > 0),
    taken              INTEGER NOT NULL DEFAULT 0,
    per_user_limit     INTEGER NOT NULL CHECK (per_user_limit > 0),
    starts_at          TEXT    NOT NULL,
    ends_at            TEXT    NOT NULL,
    pay_within_seconds INTEGER NOT NULL CHECK (pay_within_seconds > 0),  -- mall clock
    created_by         INTEGER REFERENCES users (id),
    created_at         TEXT    NOT NULL,
    CHECK (taken BETWEEN 0 AND quantity),
    CHECK (starts_at < ends_at)
);
CREATE INDEX flash_sales_by_store ON flash_sales (store_id, ends_at);
CREATE INDEX flash_sales_by_end ON flash_sales (ends_at);

-- One row per order placed in a sale.  `returned_at` is set when the order closed unpaid
-- (cancelled or expired) and its units went back on sale.
CREATE TABLE flash_sale_orders (
    order_id    INTEGER PRIMARY KEY REFERENCES orders (id),
    sale_id     INTEGER NOT NULL REFERENCES flash_sales (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    qty         INTEGER NOT NULL CHECK (qty > 0),
    returned_at TEXT
);
CREATE INDEX flash_sale_orders_by_buyer ON flash_sale_orders (sale_id, user_id);
