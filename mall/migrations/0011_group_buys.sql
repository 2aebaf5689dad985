-- 0011: group buys (拼团).  A campaign sells one SKU of a store at a group price to groups of
-- `group_size` customers; a customer opens a group (an order of their own), others join it
-- by its id or share code within `time_limit_seconds` (mall clock).  The group succeeds when
-- `group_size` members have paid; at its deadline an unfilled group fails, its unpaid orders
-- are cancelled and its paid ones refunded through the payer (refunds.cause = group_failed).
CREATE TABLE group_buys (
    id                 INTEGER PRIMARY KEY,
    store_id           INTEGER NOT NULL REFERENCES stores (id),
    sku_id             INTEGER NOT NULL REFERENCES skus (id),
    title              TEXT    NOT NULL,
    group_price_fen    INTEGER NOT NULL CHECK (group_price_fen > 0),
    group_size         INTEGER NOT NULL CHECK (group_size BETWEEN 2 AND 20),
    time_limit_seconds INTEGER NOT NULL CHECK (time_limit_seconds > 0),
    starts_at          TEXT    NOT NULL,
    ends_at            TEXT    NOT NULL,
    created_by         INTEGER REFERENCES users (id),
    created_at         TEXT    NOT NULL,
    CHECK (starts_at < ends_at)
);
CREATE INDEX group_buys_by_store ON group_buys (store_id, ends_at);

CREATE TABLE buy_groups (
    id           INTEGER PRIMARY KEY,
    group_buy_id INTEGER NOT NULL REFERENCES group_buys (id),
    leader_id    INTEGER NOT NULL REFERENCES users (id),
    share_code   TEXT    NOT NULL UNIQUE,   -- the share link's code (拼团口令)
    status       TEXT    NOT NULL CHECK (status IN ('open', 'succeeded', 'failed')),
    opened_at    TEXT    NOT NULL,
    deadline_at  TEXT    NOT NULL,
    closed_at    TEXT
);
CREATE INDEX buy_groups_open ON buy_groups (deadline_at) WHERE status = 'open';

CREATE TABLE group_members (
    order_id  INTEGER PRIMARY KEY REFERENCES orders (id),
    group_id  INTEGER NOT NULL REFERENCES buy_groups (id),
    user_id   INTEGER NOT NULL REFERENCES users (id),
    joined_at TEXT    NOT NULL
);
CREATE INDEX group_members_by_group ON group_members (group_id, user_id);
