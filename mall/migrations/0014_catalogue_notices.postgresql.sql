-- 0014 in PostgreSQL: a catalogue change is also told to the session that makes it, as a
-- NOTICE ('catalogue store:version'), which reaches the mall with the statement's own answer.
-- The mall learns its transaction's versions from these after COMMIT, instead of asking for
-- the transaction-local setting in a round trip of its own before it.  The setting is still
-- kept for builds before this one that share the database in a gray release.  A bulk load
-- (COPY of a city into an empty database, `mall.bulk_load` on) announces nothing: no mall has
-- cached anything of it, and a version per row of a million-customer city was a million
-- notifications and a setting that grew by every one of them.
CREATE OR REPLACE FUNCTION catalogue_touch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    touched jsonb[] := ARRAY[]::jsonb[];
    r jsonb;
    store bigint;
    number bigint;
BEGIN
    IF current_setting('mall.bulk_load', true) = 'on' THEN
        RETURN NULL;
    END IF;
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
            RAISE NOTICE 'catalogue %:%', store, number;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;
