-- 0007: a version per store's catalogue, bumped by the database itself in the transaction
-- that changes what a catalogue page shows (products, SKUs, tags, scenes, available stock).
-- Every process serving this database (a baseline and a canary in a gray release) keys its
-- page cache by it, so a change written by one is never hidden by the other's cache.  Being
-- triggers, they also count writes by code that knows nothing of them (an older build, the
-- simulator's bulk load).
CREATE TABLE catalogue_versions (
    store_id INTEGER PRIMARY KEY REFERENCES stores (id),
    version  INTEGER NOT NULL
);
INSERT INTO catalogue_versions (store_id, version) SELECT id, 1 FROM stores;

-- engine: sqlite (0007.postgresql.sql says it in PostgreSQL's SQL)
CREATE TRIGGER catalogue_on_stock_insert AFTER INSERT ON inventory BEGIN
    INSERT INTO catalogue_versions VALUES (NEW.store_id, 1)
        ON CONFLICT (store_id) DO UPDATE SET version = version + 1;
END;
-- A pickup changes on hand and reserved alike: the page, which shows what is available, stays.
CREATE TRIGGER catalogue_on_stock_update AFTER UPDATE OF on_hand, reserved ON inventory
    WHEN NEW.on_hand - NEW.reserved IS NOT OLD.on_hand - OLD.reserved BEGIN
    INSERT INTO catalogue_versions VALUES (NEW.store_id, 1)
        ON CONFLICT (store_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER catalogue_on_stock_delete AFTER DELETE ON inventory BEGIN
    UPDATE catalogue_versions SET version = version + 1 WHERE store_id = OLD.store_id;
END;

CREATE TRIGGER catalogue_on_product_insert AFTER INSERT ON products BEGIN
    INSERT INTO catalogue_versions VALUES (NEW.store_id, 1)
        ON CONFLICT (store_id) DO UPDATE SET version = version + 1;
END;
CREATE TRIGGER catalogue_on_product_update AFTER UPDATE ON products BEGIN
    UPDATE catalogue_versions SET version = version + 1
        WHERE store_id IN (OLD.store_id, NEW.store_id);
END;
CREATE TRIGGER catalogue_on_product_delete AFTER DELETE ON products BEGIN
    UPDATE catalogue_versions SET version = version + 1 WHERE store_id = OLD.store_id;
END;

CREATE TRIGGER catalogue_on_sku_insert AFTER INSERT ON skus BEGIN
    UPDATE catalogue_versions SET version = version + 1
        WHERE store_id = (SELECT store_id FROM products WHERE id = NEW.product_id);
END;
CREATE TRIGGER catalogue_on_sku_update AFTER UPDATE ON skus BEGIN
    UPDATE catalogue_versions SET version = version + 1
        WHERE store_id IN (SELECT store_id FROM products
                           WHERE id IN (OLD.product_id, NEW.product_id));
END;
CREATE TRIGGER catalogue_on_sku_delete AFTER DELETE ON skus BEGIN
    UPDATE catalogue_versions SET version = version + 1
        WHERE store_id = (SELECT store_id FROM products WHERE id = OLD.product_id);
END;

CREATE TRIGGER catalogue_on_tag_insert AFTER INSERT ON product_tags BEGIN
    UPDATE catalogue_versions SET version = version + 1
        WHERE store_id = (SELECT store_id FROM products WHERE id = NEW.product_id);
END;
CREATE TRIGGER catalogue_on_tag_delete AFTER DELETE ON product_tags BEGIN
    UPDATE catalogue_versions SET version = version + 1
        WHERE store_id = (SELECT store_id FROM products WHERE id = OLD.product_id);
END;
CREATE TRIGGER catalogue_on_scene_insert AFTER INSERT ON product_scenes BEGIN
    UPDATE catalogue_versions SET version = version + 1
        WHERE store_id = (SELECT store_id FROM products WHERE id = NEW.product_id);
END;
CREATE TRIGGER catalogue_on_scene_delete AFTER DELETE ON product_scenes BEGIN
    UPDATE catalogue_versions SET version = version + 1
        WHERE store_id = (SELECT store_id FROM products WHERE id = OLD.product_id);
END;
-- engine: end
