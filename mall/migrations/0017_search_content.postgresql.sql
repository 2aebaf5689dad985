-- 0017 in PostgreSQL: one bump per statement, not per row.  A bulk load (COPY of a city
-- into an empty database, `mall.bulk_load` on) counts nothing: no mall has searched it yet.
CREATE FUNCTION search_content_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mall.bulk_load', true) = 'on' THEN
        RETURN NULL;
    END IF;
    UPDATE search_index_version SET content = content + 1;
    RETURN NULL;
END $$;
CREATE TRIGGER search_content_on_products
    AFTER INSERT OR DELETE OR UPDATE OF name, store_id ON products
    FOR EACH STATEMENT EXECUTE FUNCTION search_content_touch();
CREATE TRIGGER search_content_on_tags AFTER INSERT OR UPDATE OR DELETE ON product_tags
    FOR EACH STATEMENT EXECUTE FUNCTION search_content_touch();
CREATE TRIGGER search_content_on_stores
    AFTER INSERT OR DELETE OR UPDATE OF lat, lng, opens_at, closes_at, district_code ON stores
    FOR EACH STATEMENT EXECUTE FUNCTION search_content_touch();
