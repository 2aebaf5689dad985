-- 0007 in PostgreSQL: one trigger function stands for SQLite's per-table triggers.  A row
-- names its store itself (inventory, products, member prices) or through its product (SKUs,
-- tags, scenes).  Every new version is also announced (NOTIFY catalogue 'store:version') at
-- commit, so each mall process keeps its page cache exact without reading the version on
-- every request (mall/services/catalogue_cache.py).
CREATE FUNCTION catalogue_touch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched jsonb[] := ARRAY[]::jsonb[];
    r jsonb;
    store bigint;
BEGIN
    IF TG_OP <> 'DELETE' THEN touched := touched || to_jsonb(NEW); END IF;
    IF TG_OP <> 'INSERT' THEN touched := touched || to_jsonb(OLD); END IF;
    IF TG_TABLE_NAME = 'inventory' AND TG_OP = 'UPDATE' THEN   -- (NEW.on_hand: inventory only)
        IF NEW.on_hand - NEW.reserved = OLD.on_hand - OLD.reserved THEN
            RETURN NULL;   -- a pickup changes on hand and reserved alike: the page stays
        END IF;
    END IF;
    FOREACH r IN ARRAY touched LOOP
        IF r ? 'store_id' THEN
            store := (r ->> 'store_id')::bigint;
        ELSE
            SELECT p.store_id INTO store FROM products p WHERE p.id = (r ->> 'product_id')::bigint;
        END IF;
        IF store IS NOT NULL THEN
            INSERT INTO catalogue_versions VALUES (store, 1)
                ON CONFLICT (store_id) DO UPDATE SET version = catalogue_versions.version + 1;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE FUNCTION catalogue_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('catalogue', NEW.store_id || ':' || NEW.version);
    -- and to the transaction's own process, which reads it before it commits
    PERFORM set_config('mall.catalogue', coalesce(current_setting('mall.catalogue', true), '')
                       || NEW.store_id || ':' || NEW.version || ' ', true);
    RETURN NULL;
END $$;

CREATE TRIGGER catalogue_announce AFTER INSERT OR UPDATE ON catalogue_versions
    FOR EACH ROW EXECUTE FUNCTION catalogue_announce();
CREATE TRIGGER catalogue_on_stock AFTER INSERT OR DELETE OR UPDATE OF on_hand, reserved
    ON inventory FOR EACH ROW EXECUTE FUNCTION catalogue_touch();
CREATE TRIGGER catalogue_on_product AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH ROW EXECUTE FUNCTION catalogue_touch();
CREATE TRIGGER catalogue_on_sku AFTER INSERT OR UPDATE OR DELETE ON skus
    FOR EACH ROW EXECUTE FUNCTION catalogue_touch();
CREATE TRIGGER catalogue_on_tag AFTER INSERT OR DELETE ON product_tags
    FOR EACH ROW EXECUTE FUNCTION catalogue_touch();
CREATE TRIGGER catalogue_on_scene AFTER INSERT OR DELETE ON product_scenes
    FOR EACH ROW EXECUTE FUNCTION catalogue_touch();
