-- 0001: the spine of the mall. Times are ISO 8601 text with the +08:00 offset, money is
-- integer fen. Every table and column is described in docs/data-dictionary.md.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE districts (
    code TEXT PRIMARY KEY,          -- national administrative code (adcode)
    name TEXT NOT NULL UNIQUE
);
INSERT INTO districts (code, name) VALUES
    ('430102', '芙蓉区'), ('430103', '天心区'), ('430104', '岳麓区'),
    ('430105', '开福区'), ('430111', '雨花区'), ('430112', '望城区'),
    ('430121', '长沙县'), ('430181', '浏阳市'), ('430182', '宁乡市');

CREATE TABLE store_kinds (
    code TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
INSERT INTO store_kinds (code, name) VALUES
    ('snacks', '夜宵小吃'), ('convenience', '便利店'), ('bakery', '烘焙'),
    ('fruit', '水果'), ('supermarket', '超市'), ('milk_tea', '奶茶'),
    ('restaurant', '餐馆'), ('stationery', '文具零食');

CREATE TABLE stores (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL REFERENCES store_kinds (code),
    district_code   TEXT    NOT NULL REFERENCES districts (code),
    business_circle TEXT,
    lat             REAL    NOT NULL,
    lng             REAL    NOT NULL,
    opens_at        TEXT    NOT NULL,   -- HH:MM local time
    closes_at       TEXT    NOT NULL,   -- HH:MM; earlier than opens_at = closes after midnight
    created_at      TEXT    NOT NULL
);
CREATE INDEX stores_by_district ON stores (district_code);
CREATE INDEX stores_by_lat ON stores (lat);

CREATE TABLE pickup_points (
    id         INTEGER PRIMARY KEY,
    store_id   INTEGER NOT NULL REFERENCES stores (id),
    kind       TEXT    NOT NULL CHECK (kind IN ('counter', 'locker')),
    name       TEXT    NOT NULL,
    lat        REAL    NOT NULL,
    lng        REAL    NOT NULL,
    created_at TEXT    NOT NULL
);
CREATE INDEX pickup_points_by_store ON pickup_points (store_id);

CREATE TABLE users (
    id           INTEGER PRIMARY KEY,
    openid       TEXT    NOT NULL UNIQUE,
    role         TEXT    NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'operator')),
    nickname     TEXT,
    phone_masked TEXT,                 -- 138****1234
    phone_enc    BLOB,                 -- AES-GCM ciphertext of the full number
    created_at   TEXT    NOT NULL
);

CREATE TABLE store_staff (
    user_id    INTEGER NOT NULL REFERENCES users (id),
    store_id   INTEGER NOT NULL REFERENCES stores (id),
    created_at TEXT    NOT NULL,
    PRIMARY KEY (user_id, store_id)
);
CREATE INDEX store_staff_by_store ON store_staff (store_id);

CREATE TABLE addresses (
    id             INTEGER PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    district_code  TEXT    NOT NULL REFERENCES districts (code),
    contact_masked TEXT    NOT NULL,   -- 张* 138****1234 芙蓉区五一大道***
    contact_enc    BLOB    NOT NULL,   -- AES-GCM ciphertext of name, phone and detail
    lat            REAL,
    lng            REAL,
    created_at     TEXT    NOT NULL
);
CREATE INDEX addresses_by_user ON addresses (user_id);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    store_id    INTEGER NOT NULL REFERENCES stores (id),
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    created_at  TEXT    NOT NULL
);
CREATE INDEX products_by_store ON products (store_id, id);

CREATE TABLE product_tags (
    product_id INTEGER NOT NULL REFERENCES products (id),
    tag        TEXT    NOT NULL,       -- localized label: 夜宵, 放学, 家庭装, 校园
    PRIMARY KEY (product_id, tag)
);
CREATE INDEX product_tags_by_tag ON product_tags (tag, product_id);

CREATE TABLE product_scenes (
    product_id INTEGER NOT NULL REFERENCES products (id),
    scene      TEXT    NOT NULL,       -- machine key: late_night, after_school, family, campus
    PRIMARY KEY (product_id, scene)
);
CREATE INDEX product_scenes_by_scene ON product_scenes (scene, product_id);

CREATE TABLE skus (
    id         INTEGER PRIMARY KEY,
    product_id INTEGER NOT NULL REFERENCES products (id),
    spec       TEXT    NOT NULL DEFAULT '标准',
    price_fen  INTEGER NOT NULL CHECK (price_fen > 0),
    created_at TEXT    NOT NULL
);
CREATE INDEX skus_by_product ON skus (product_id);

CREATE TABLE inventory (
    store_id   INTEGER NOT NULL REFERENCES stores (id),
    sku_id     INTEGER NOT NULL REFERENCES skus (id),
    on_hand    INTEGER NOT NULL DEFAULT 0 CHECK (on_hand >= 0),
    reserved   INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= on_hand),
    updated_at TEXT    NOT NULL,
    PRIMARY KEY (store_id, sku_id)
);

CREATE TABLE orders (
    id              INTEGER PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users (id),
    store_id        INTEGER NOT NULL REFERENCES stores (id),
    status          TEXT    NOT NULL CHECK (status IN ('pending_payment', 'paid',
                        'ready_for_pickup', 'out_for_delivery', 'completed', 'cancelled',
                        'expired')),
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
    closed_at       TEXT,              -- completed, cancelled or expired
    CHECK ((fulfilment = 'pickup') = (pickup_point_id IS NOT NULL)),
    CHECK ((fulfilment = 'delivery') = (address_id IS NOT NULL))
);
CREATE INDEX orders_by_user ON orders (user_id, id);
CREATE INDEX orders_by_store ON orders (store_id, created_at);
CREATE INDEX orders_pending ON orders (expires_at) WHERE status = 'pending_payment';

CREATE TABLE order_lines (
    order_id       INTEGER NOT NULL REFERENCES orders (id),
    line_no        INTEGER NOT NULL,
    sku_id         INTEGER NOT NULL REFERENCES skus (id),
    product_name   TEXT    NOT NULL,   -- as sold, so later renames do not rewrite history
    unit_price_fen INTEGER NOT NULL,
    qty            INTEGER NOT NULL CHECK (qty > 0),
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE idempotency_keys (
    user_id      INTEGER NOT NULL REFERENCES users (id),
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    order_id     INTEGER NOT NULL REFERENCES orders (id),
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (user_id, key)
);

CREATE TABLE payments (
    id             INTEGER PRIMARY KEY,
    order_id       INTEGER NOT NULL REFERENCES orders (id),
    prepay_id      TEXT    NOT NULL UNIQUE,
    out_trade_no   TEXT    NOT NULL UNIQUE,   -- the mall's own number for this attempt
    amount_fen     INTEGER NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('created', 'succeeded', 'failed', 'closed')),
    transaction_id TEXT,
    created_at     TEXT    NOT NULL,
    settled_at     TEXT
);
CREATE INDEX payments_by_order ON payments (order_id);

CREATE TABLE payment_notifications (
    id          TEXT PRIMARY KEY,      -- the notification's own id: a repeat is a duplicate
    prepay_id   TEXT NOT NULL,
    trade_state TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    received_at TEXT NOT NULL
);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY,
    at          TEXT    NOT NULL,
    actor_id    INTEGER REFERENCES users (id),
    actor_role  TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    store_id    INTEGER,
    target_type TEXT    NOT NULL,
    target_id   TEXT    NOT NULL,
    detail      TEXT    NOT NULL DEFAULT '{}'   -- JSON, personal data masked
);
CREATE INDEX audit_log_by_store ON audit_log (store_id, id);
