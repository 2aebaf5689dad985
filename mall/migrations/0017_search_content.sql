-- 0017: a number for what a search matches on across the whole city (products' names and
-- stores, their tags; stores' places, hours and districts), bumped in the transaction of
-- every such change, whoever writes.  A process keeps a word's matches while it stands.
-- Stock is not in it: the catalogue versions (0007) change with every order a store
-- takes, and a search's matches did not; on PostgreSQL the city search was the database's
-- costliest statement at the late-night crest (13% of its time, 1.2 ms a search).
ALTER TABLE search_index_version ADD COLUMN content INTEGER NOT NULL DEFAULT 0;

-- engine: sqlite (0017.postgresql.sql says it in PostgreSQL's SQL)
CREATE TRIGGER search_content_on_product_insert AFTER INSERT ON products BEGIN
    UPDATE search_index_version SET content = content + 1;
END;
CREATE TRIGGER search_content_on_product_update AFTER UPDATE OF name, store_id ON products BEGIN
    UPDATE search_index_version SET content = content + 1;
END;
CREATE TRIGGER search_content_on_product_delete AFTER DELETE ON products BEGIN
    UPDATE search_index_version SET content = content + 1;
END;
CREATE TRIGGER search_content_on_tag_insert AFTER INSERT ON product_tags BEGIN
    UPDATE search_index_version SET content = content + 1;
END;
CREATE TRIGGER search_content_on_tag_update AFTER UPDATE ON product_tags BEGIN
    UPDATE search_index_version SET content = content + 1;
END;
CREATE TRIGGER search_content_on_tag_delete AFTER DELETE ON product_tags BEGIN
    UPDATE search_index_version SET content = content + 1;
END;
CREATE TRIGGER search_content_on_store_insert AFTER INSERT ON stores BEGIN
    UPDATE search_index_version SET content = content + 1;
END;
CREATE TRIGGER search_content_on_store_update
    AFTER UPDATE OF lat, lng, opens_at, closes_at, district_code ON stores BEGIN
    UPDATE search_index_version SET content = content + 1;
END;
CREATE TRIGGER search_content_on_store_delete AFTER DELETE ON stores BEGIN
    UPDATE search_index_version SET content = content + 1;
END;
-- engine: end
