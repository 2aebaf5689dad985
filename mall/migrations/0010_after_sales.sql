-- 0010: after-sales (售后).  The order lifecycle gains refund_requested, refunded and
-- refund_rejected; SQLite cannot change a CHECK in place, so `orders` is rebuilt (the
-- migration runner turns foreign keys off around migrations and checks them before commit,
-- as SQLite's own procedure for such changes asks).  An order holds stock while `closed_at`
-- is NULL: a refund of goods never picked up releases them and closes the order.  Whether
-- its goods left the store is `handed_over_at`, kept apart from the status a refund changes.
-- engine: sqlite (0010.postgresql.sql says it in PostgreSQL's SQL)
CREATE TABLE orders_rebuilt (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users (id),
    store_id        INTEGER NOT NULL REFERENCES stores (id),
    status          TEXT    NOT NULL CHECK (status IN ('pending_payment', 'paid',
                        'ready_for_pickup', 'out_for_delivery', 'completed', 'cancelled',
                        'expired', 'refund_requested', 'refunded', 'refund_rejected')),
    fulfilment      TEXT    NOT NULL CHECK (fulfilment IN ('pickup', 'delivery')),
    pickup_point_id INTEGER REFERENCES pickup_points (id),
    address_id      INTEGER REFERENCES addresses (id),
    total_fen       INTEGER NOT NULL CHECK (total_fen > 0),
    pickup_code     TEXT,
    pickup_failures INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL,
    expires_at      TEXT    NOT NULL,
    paid_at         TEXT,
    ready_at        TEXT,
    closed_at       TEXT,              -- completed, cancelled, expired, or refunded unpicked
    handed_over_at  TEXT,              -- the goods left the store (picked up or delivered)
    CHECK ((fulfilment = 'pickup') = (pickup_point_id IS NOT NULL)),
    CHECK ((fulfilment = 'delivery') = (address_id IS NOT NULL))
);
INSERT INTO orders_rebuilt SELECT id, user_id, store_id, status, fulfilment, pickup_point_id,
    address_id, total_fen, pickup_code, pickup_failures, created_at, expires_at, paid_at,
    ready_at, closed_at, CASE WHEN status = 'completed' THEN closed_at END FROM orders;
DROP TABLE orders;
ALTER TABLE orders_rebuilt RENAME TO orders;
CREATE INDEX orders_by_user ON orders (user_id, id);
CREATE INDEX orders_by_store ON orders (store_id, created_at);
CREATE INDEX orders_pending ON orders (expires_at) WHERE status = 'pending_payment';
-- engine: end

-- One row per refund: asked by a customer (or made by the mall for a failed group buy),
-- decided by the store, paid back by the payer exactly once (its notification or an answer
-- to a query settles it, by a conditional update).
CREATE TABLE refunds (
    id            INTEGER PRIMARY KEY,
    order_id      INTEGER NOT NULL REFERENCES orders (id),
    payment_id    INTEGER NOT NULL REFERENCES payments (id),
    out_refund_no TEXT    NOT NULL UNIQUE,   -- the mall's number for it at the payer
    amount_fen    INTEGER NOT NULL CHECK (amount_fen > 0),
    reason        TEXT    NOT NULL,
    cause         TEXT    NOT NULL CHECK (cause IN ('customer', 'group_failed')),
    from_status   TEXT    NOT NULL,          -- the order's status when it was asked
    status        TEXT    NOT NULL CHECK (status IN ('requested', 'rejected', 'approved',
                                                     'processing', 'succeeded')),
    requested_at  TEXT    NOT NULL,
    decided_at    TEXT,
    decided_by    INTEGER REFERENCES users (id),
    reject_reason TEXT,
    sent_at       TEXT,                      -- when the payer accepted it
    queried_at    TEXT,
    refund_id     TEXT,                      -- the payer's id for it
    settled_at    TEXT
);
CREATE UNIQUE INDEX refunds_one_per_order ON refunds (order_id);
CREATE INDEX refunds_to_send ON refunds (id) WHERE status IN ('approved', 'processing');

-- Refund notifications received, as payment_notifications: a repeat id changes nothing.
CREATE TABLE refund_notifications (
    id            TEXT PRIMARY KEY,
    out_refund_no TEXT NOT NULL,
    refund_status TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    received_at   TEXT NOT NULL
);
