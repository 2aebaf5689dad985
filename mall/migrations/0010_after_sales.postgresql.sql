-- 0010 in PostgreSQL: a CHECK and a column change in place, no rebuild.
ALTER TABLE orders DROP CONSTRAINT orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN ('pending_payment',
    'paid', 'ready_for_pickup', 'out_for_delivery', 'completed', 'cancelled', 'expired',
    'refund_requested', 'refunded', 'refund_rejected'));
ALTER TABLE orders ADD COLUMN handed_over_at TEXT;
UPDATE orders SET handed_over_at = closed_at WHERE status = 'completed';
