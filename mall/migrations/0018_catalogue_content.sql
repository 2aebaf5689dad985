-- 0018: a version per store of what a catalogue page shows apart from its stock (products,
-- SKUs and their prices, tags, scenes, member prices, which SKUs the store carries).
-- Catalogue and product pages are kept under it and take the units available from the
-- database each time they are served (on PostgreSQL in the round trip that catches up with
-- the versions), so an order no longer outdates every page of its store: at the late-night
-- crest nine pages in ten were read afresh.  0007's version, which stock moves too, still
-- keys the scene offers and the pages of builds before this one.
--
-- In SQLite the content version is 0007's version less the moves of stock counted in it:
-- only the stock trigger changes, and a build before this one reads 0007's version as ever.
-- engine: sqlite (0018.postgresql.sql says it in PostgreSQL's SQL)
CREATE TABLE catalogue_stock_moves (
    store_id INTEGER PRIMARY KEY REFERENCES stores (id),
    moves    INTEGER NOT NULL
);
DROP TRIGGER catalogue_on_stock_update;
CREATE TRIGGER catalogue_on_stock_update AFTER UPDATE OF on_hand, reserved ON inventory
    WHEN NEW.on_hand - NEW.reserved IS NOT OLD.on_hand - OLD.reserved BEGIN
    INSERT INTO catalogue_versions VALUES (NEW.store_id, 1)
        ON CONFLICT (store_id) DO UPDATE SET version = version + 1;
    INSERT INTO catalogue_stock_moves VALUES (NEW.store_id, 1)
        ON CONFLICT (store_id) DO UPDATE SET moves = moves + 1;
END;
-- engine: end
