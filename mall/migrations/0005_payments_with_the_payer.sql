-- 0005: the payer is another process.  The mall asks it about payments it has not heard of
-- (主动查单) and closes at the payer the payments of orders that can no longer be paid.
ALTER TABLE payments ADD COLUMN queried_at TEXT;        -- last order query, mall clock
ALTER TABLE payments ADD COLUMN payer_closed_at TEXT;   -- when the payer closed it too
-- Payments closed before the payer was a process of its own have nothing to close there.
UPDATE payments SET payer_closed_at = settled_at WHERE status = 'closed';
CREATE INDEX payments_unsettled ON payments (created_at) WHERE status = 'created';
CREATE INDEX payments_to_close ON payments (id)
    WHERE status = 'closed' AND payer_closed_at IS NULL;
