-- 0018 in PostgreSQL: a change to what a page shows apart from stock is also announced on the
-- channel `catalogue_content` (and told to its own session as 'catalogue_content
-- store:number'), with the same number as its 'catalogue' announcement, which builds before
-- this one still listen to.  A change of stock alone is announced on `catalogue` only; the
-- check for it now comes before the row is turned into JSON, the cost of every order line.
CREATE OR REPLACE FUNCTION catalogue_touch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched jsonb[] := ARRAY[]::jsonb[];
    r jsonb;
    store bigint;
    number bigint;
    stock_only boolean := TG_TABLE_NAME = 'inventory' AND TG_OP = 'UPDATE';
BEGIN
    IF current_setting('mall.bulk_load', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF stock_only THEN   -- (NEW.on_hand: inventory only)
        IF NEW.on_hand - NEW.reserved = OLD.on_hand - OLD.reserved THEN
            RETURN NULL;   -- a pickup changes on hand and reserved alike: the page stays
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN touched := touched || to_jsonb(NEW); END IF;
    IF TG_OP <> 'INSERT' THEN touched := touched || to_jsonb(OLD); END IF;
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
            RAISE NOTICE 'catalogue %:%', store, number;
            IF NOT stock_only THEN
                PERFORM pg_notify('catalogue_content', store || ':' || number);
                RAISE NOTICE 'catalogue_content %:%', store, number;
            END IF;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
