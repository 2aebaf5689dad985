-- The payment sandbox's own database (not the mall's): what WeChat Pay keeps.
CREATE TABLE IF NOT EXISTS transactions (
    out_trade_no   TEXT PRIMARY KEY,          -- the merchant's number for this payment
    prepay_id      TEXT    NOT NULL UNIQUE,
    mchid          TEXT    NOT NULL,
    appid          TEXT    NOT NULL,
    description    TEXT    NOT NULL,
    amount_fen     INTEGER NOT NULL CHECK (amount_fen > 0),
    openid         TEXT    NOT NULL,
    notify_url     TEXT    NOT NULL,
    trade_state    TEXT    NOT NULL CHECK (trade_state IN ('NOTPAY', 'SUCCESS', 'PAYERROR',
                                                           'CLOSED')),
    transaction_id TEXT UNIQUE,
    success_time   TEXT,
    created_at     TEXT    NOT NULL,
    updated_at     TEXT    NOT NULL
);

-- Notifications owed to merchants: written with the payment they announce, deleted never.
CREATE TABLE IF NOT EXISTS outbox (
    id           TEXT PRIMARY KEY,            -- the notification's id (a repeat keeps it)
    out_trade_no TEXT    NOT NULL REFERENCES transactions (out_trade_no),
    url          TEXT    NOT NULL,
    body         BLOB    NOT NULL,            -- the envelope with its encrypted resource
    attempts     INTEGER NOT NULL DEFAULT 0,
    due_at       REAL    NOT NULL,            -- Unix seconds of the next attempt
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'gave_up')),
    last_result  TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due_at) WHERE state = 'pending';

-- Refunds of successful payments (WeChat Pay v3 domestic refunds).  The sandbox settles a
-- refund as soon as it is asked (the money goes back to the wallet) and owes the merchant a
-- REFUND.SUCCESS notification, written to the outbox in the same transaction.
CREATE TABLE IF NOT EXISTS refunds (
    out_refund_no TEXT PRIMARY KEY,          -- the merchant's number for this refund
    refund_id     TEXT    NOT NULL UNIQUE,
    out_trade_no  TEXT    NOT NULL REFERENCES transactions (out_trade_no),
    amount_fen    INTEGER NOT NULL CHECK (amount_fen > 0),
    reason        TEXT,
    notify_url    TEXT    NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('PROCESSING', 'SUCCESS')),
    success_time  TEXT,
    created_at    TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS refunds_by_trade ON refunds (out_trade_no);

-- Switches kept with the payer's data: the simulated clock's anchor, so a restarted payer
-- resumes simulated time (and WeChat's retry schedule) where it was.
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
