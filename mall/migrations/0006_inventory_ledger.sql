-- 0006: the inventory ledger (库存流水): every change of a SKU's stock at a store is a row,
-- written in the transaction that makes it, so stock can be accounted for change by change.
CREATE TABLE inventory_ledger (
    id             INTEGER PRIMARY KEY,
    store_id       INTEGER NOT NULL,
    sku_id         INTEGER NOT NULL,
    on_hand_delta  INTEGER NOT NULL,
    reserved_delta INTEGER NOT NULL,
    reason         TEXT    NOT NULL CHECK (reason IN ('opening', 'stock_set', 'reserve',
                                                      'release', 'hand_over')),
    order_id       INTEGER REFERENCES orders (id),   -- reserve, release, hand_over
    at             TEXT    NOT NULL,
    FOREIGN KEY (store_id, sku_id) REFERENCES inventory (store_id, sku_id)
);
CREATE INDEX inventory_ledger_by_sku ON inventory_ledger (store_id, sku_id);
CREATE INDEX inventory_ledger_by_order ON inventory_ledger (order_id) WHERE order_id IS NOT NULL;
-- Stock that stood before the ledger existed opens it.
INSERT INTO inventory_ledger (store_id, sku_id, on_hand_delta, reserved_delta, reason, at)
    SELECT store_id, sku_id, on_hand, reserved, 'opening', updated_at FROM inventory
    WHERE on_hand != 0 OR reserved != 0;
