-- 0019: what a store's dashboard reads (GET .../kpis).  A store's paid orders in a window,
-- its handed-over orders (pickup waiting time), and its visits: a customer viewing the
-- store's catalogue, counted once per customer, store and clock hour, the denominator of
-- conversion.  The mall writes visits behind the catalogue's answers, a batch a second.
CREATE TABLE store_visits (
    store_id INTEGER NOT NULL REFERENCES stores (id),
    hour     TEXT    NOT NULL,   -- the visit's clock hour, as a stamp: ...T22:00:00.000+08:00
    user_id  INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (store_id, hour, user_id)
);
CREATE INDEX orders_by_store_paid ON orders (store_id, paid_at) WHERE paid_at IS NOT NULL;
CREATE INDEX orders_by_store_handed_over ON orders (store_id, handed_over_at)
    WHERE handed_over_at IS NOT NULL;
CREATE INDEX refunds_by_settled ON refunds (settled_at) WHERE settled_at IS NOT NULL;
