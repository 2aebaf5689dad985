-- 0012: membership (会员体系).  A customer becomes a member with their first paid order (or
-- an opening balance the city brings); their level follows what they have spent, their
-- points follow a ledger: every change of `points` or `spent_fen` is one `points_ledger` row
-- carrying the change and the balance after it, so `xingcheng verify` can add the rows up.
-- Points a refund reverses may already be spent: the balance may then go below zero, and
-- the customer cannot redeem until they earn it back (as the big platforms do), rather
-- than the refund keeping back money or the points staying given.
CREATE TABLE members (
    user_id   INTEGER PRIMARY KEY REFERENCES users (id),
    level     TEXT    NOT NULL,      -- a key of mall/data/membership.toml's levels
    points    INTEGER NOT NULL,
    spent_fen INTEGER NOT NULL CHECK (spent_fen >= 0),
    joined_at TEXT    NOT NULL,
    updated_at TEXT   NOT NULL
);

CREATE TABLE points_ledger (
    id        INTEGER PRIMARY KEY,
    user_id   INTEGER NOT NULL REFERENCES users (id),
    order_id  INTEGER REFERENCES orders (id),
    reason    TEXT    NOT NULL CHECK (reason IN ('opening', 'earned', 'redeemed', 'returned',
                                                 'reversed')),
    points    INTEGER NOT NULL,          -- the change: + earned, returned, opening; - others
    spent_fen INTEGER NOT NULL DEFAULT 0, -- the change of the member's spending
    balance   INTEGER NOT NULL,          -- points after this row
    at        TEXT    NOT NULL,
    CHECK (points != 0 OR spent_fen != 0),
    CHECK ((reason = 'opening') = (order_id IS NULL))
);
CREATE INDEX points_ledger_by_user ON points_ledger (user_id, id);
-- Each movement happens at most once per order: a second notification, a sweep racing a
-- refund, cannot earn, redeem, return or reverse twice.
CREATE UNIQUE INDEX points_ledger_once_per_order ON points_ledger (order_id, reason)
    WHERE order_id IS NOT NULL;

-- What a member pays for a SKU, from a level up; the list price for everyone else.
CREATE TABLE member_prices (
    sku_id     INTEGER PRIMARY KEY REFERENCES skus (id),
    store_id   INTEGER NOT NULL REFERENCES stores (id),
    price_fen  INTEGER NOT NULL CHECK (price_fen > 0),
    min_level  TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);
CREATE INDEX member_prices_by_store ON member_prices (store_id);

-- Paid orders by when: the sweeper finds any an older build paid without earning points
-- (two builds on one database in a gray release) among those paid since it last looked.
CREATE INDEX orders_by_paid_at ON orders (paid_at) WHERE paid_at IS NOT NULL;

-- Points an order redeemed and the fen they took off it: total = lines - coupon - points.
ALTER TABLE orders ADD COLUMN points_used INTEGER NOT NULL DEFAULT 0 CHECK (points_used >= 0);
ALTER TABLE orders ADD COLUMN points_fen INTEGER NOT NULL DEFAULT 0 CHECK (points_fen >= 0);

-- Catalogue pages show member prices: a change to one is a new catalogue version (0007).
-- engine: sqlite (0012.postgresql.sql says it in PostgreSQL's SQL)
CREATE TRIGGER catalogue_on_member_price_insert AFTER INSERT ON member_prices BEGIN
    UPDATE catalogue_versions SET version = version + 1 WHERE store_id = NEW.store_id;
END;
CREATE TRIGGER catalogue_on_member_price_update AFTER UPDATE ON member_prices BEGIN
    UPDATE catalogue_versions SET version = version + 1
        WHERE store_id IN (OLD.store_id, NEW.store_id);
END;
CREATE TRIGGER catalogue_on_member_price_delete AFTER DELETE ON member_prices BEGIN
    UPDATE catalogue_versions SET version = version + 1 WHERE store_id = OLD.store_id;
END;
-- engine: end
