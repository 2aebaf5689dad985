-- 0008: coupons (优惠券).  A template says what a coupon takes off, where, when and how
-- many; a customer's coupon is one claim of it, used by at most one order at a time and
-- given back when that order is cancelled or expires.  The discount an order took is kept
-- with the coupon that gave it, so the order's total is its lines less that discount.
CREATE TABLE coupon_templates (
    id             INTEGER PRIMARY KEY,
    title          TEXT    NOT NULL,
    kind           TEXT    NOT NULL CHECK (kind IN ('threshold', 'fixed', 'percent')),
    threshold_fen  INTEGER NOT NULL DEFAULT 0 CHECK (threshold_fen >= 0),
    discount_fen   INTEGER CHECK (discount_fen > 0),          -- threshold and fixed
    percent_off    INTEGER CHECK (percent_off BETWEEN 1 AND 99), -- percent
    cap_fen        INTEGER CHECK (cap_fen > 0),               -- percent: at most this off
    scope          TEXT    NOT NULL CHECK (scope IN ('store', 'district', 'campus', 'city')),
    store_id       INTEGER REFERENCES stores (id),            -- scope store
    district_code  TEXT    REFERENCES districts (code),       -- scope district
    campus         TEXT,                                      -- scope campus: a business circle
    starts_at      TEXT    NOT NULL,
    ends_at        TEXT    NOT NULL,
    total_qty      INTEGER NOT NULL CHECK (total_qty > 0),
    per_user_limit INTEGER NOT NULL CHECK (per_user_limit > 0),
    claimed        INTEGER NOT NULL DEFAULT 0,
    created_by     INTEGER REFERENCES users (id),
    created_at     TEXT    NOT NULL,
    CHECK (claimed BETWEEN 0 AND total_qty),
    CHECK (starts_at < ends_at),
    CHECK ((kind = 'percent') = (percent_off IS NOT NULL)),
    CHECK ((kind = 'percent') = (discount_fen IS NULL)),
    CHECK ((scope = 'store') = (store_id IS NOT NULL)),
    CHECK ((scope = 'district') = (district_code IS NOT NULL)),
    CHECK ((scope = 'campus') = (campus IS NOT NULL))
);
CREATE INDEX coupon_templates_by_end ON coupon_templates (ends_at);

CREATE TABLE user_coupons (
    id           INTEGER PRIMARY KEY,
    template_id  INTEGER NOT NULL REFERENCES coupon_templates (id),
    user_id      INTEGER NOT NULL REFERENCES users (id),
    status       TEXT    NOT NULL CHECK (status IN ('available', 'used')),
    claimed_at   TEXT    NOT NULL,
    order_id     INTEGER REFERENCES orders (id),
    discount_fen INTEGER,
    used_at      TEXT,
    CHECK ((status = 'used') = (order_id IS NOT NULL)),
    CHECK ((status = 'used') = (discount_fen IS NOT NULL))
);
CREATE INDEX user_coupons_by_user ON user_coupons (user_id, template_id);
CREATE UNIQUE INDEX user_coupons_by_order ON user_coupons (order_id);
