-- 0007 in PostgreSQL: versions are announced, not kept in rows.  A change to what a store's
-- page shows takes a new number from one sequence and announces it at commit (NOTIFY
-- catalogue 'store:version'); each mall process keeps the numbers it hears in memory
-- (mall/storage/postgresql.py), and hears its own transactions' through a transaction-local
-- setting before they return.  No row is updated, so concurrent orders at one store do not
-- queue (and, SERIALIZABLE, fail) on a version row as they would on catalogue_versions.
-- A row names its store itself (inventory, products, member prices) or through its product
-- (SKUs, tags, scenes).
CREATE SEQUENCE catalogue_version_numbers;

CREATE FUNCTION catalogue_touch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched jsonb[] := ARRAY[]::jsonb[];
    r jsonb;
    store bigint;
    number bigint;
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
            number := nextval('catalogue_version_numbers');
            PERFORM pg_notify('catalogue', store || ':' || number);
            PERFORM set_config('mall.catalogue', coalesce(current_setting('mall.catalogue', true),
                               '') || store || ':' || number || ' ', true);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

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
