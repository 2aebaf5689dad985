-- 0002: lets the stock audit sum the units live orders hold per SKU without a scan.
CREATE INDEX order_lines_by_sku ON order_lines (sku_id, order_id);
