-- 0013: products found through an index instead of a scan of every name (mall/search_terms.py
-- says how texts are cut).  One FTS5 row per product: its name's and its tags' bigrams, and
-- their single characters.  The rowid is store_id * 2^32 + product_id, so that counting a
-- search's matches per store reads the index alone, and one store's matches are a rowid range.
-- engine: sqlite (PostgreSQL searches by scanning: docs/scale.md)
CREATE VIRTUAL TABLE product_search USING fts5(
    name_grams, tag_grams, name_chars, tag_chars,
    tokenize = 'unicode61 remove_diacritics 0'
);
-- engine: end

-- Bumped by every reindex, in its transaction: what a process remembers of the index (a
-- word's matches per store) holds while this is unchanged, whichever process reindexed.
CREATE TABLE search_index_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO search_index_version VALUES (1, 0);

-- Products whose index row may be out of date.  SQL alone cannot cut text into bigrams, so
-- triggers only note the product here, in the transaction that changes it, whoever writes
-- (this build, an older one sharing the database in a gray release, the city's bulk load);
-- the mall reindexes noted products (this build at once, the sweeper for anyone else's), and
-- a search while any is noted scans as before, so an answer is never stale.  `store_id` is
-- where the product was indexed, for removing that row.
CREATE TABLE search_stale (
    product_id INTEGER PRIMARY KEY,
    store_id   INTEGER NOT NULL
);
INSERT INTO search_stale (product_id, store_id) SELECT id, store_id FROM products;

-- engine: sqlite
CREATE TRIGGER search_on_product_insert AFTER INSERT ON products BEGIN
    INSERT OR IGNORE INTO search_stale VALUES (NEW.id, NEW.store_id);
END;
CREATE TRIGGER search_on_product_update AFTER UPDATE OF name, store_id ON products BEGIN
    INSERT OR IGNORE INTO search_stale VALUES (OLD.id, OLD.store_id);
END;
CREATE TRIGGER search_on_product_delete AFTER DELETE ON products BEGIN
    INSERT OR IGNORE INTO search_stale VALUES (OLD.id, OLD.store_id);
END;
CREATE TRIGGER search_on_tag_insert AFTER INSERT ON product_tags BEGIN
    INSERT OR IGNORE INTO search_stale
        SELECT id, store_id FROM products WHERE id = NEW.product_id;
END;
CREATE TRIGGER search_on_tag_update AFTER UPDATE ON product_tags BEGIN
    INSERT OR IGNORE INTO search_stale
        SELECT id, store_id FROM products WHERE id IN (OLD.product_id, NEW.product_id);
END;
CREATE TRIGGER search_on_tag_delete AFTER DELETE ON product_tags BEGIN
    INSERT OR IGNORE INTO search_stale
        SELECT id, store_id FROM products WHERE id = OLD.product_id;
END;
-- engine: end
