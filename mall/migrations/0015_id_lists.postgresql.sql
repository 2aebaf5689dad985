-- 0015 in PostgreSQL: `SELECT CAST(value AS INTEGER) FROM json_each(?)` (a list of ids in
-- one parameter: mall/storage/dialect.py) reads through id_list.  json_array_elements_text
-- is planned as a hundred rows whatever it holds; against a district's 200 stores that is
-- half of them, so the planner scanned every inventory and SKU row to answer for the one or
-- two stores a lookup had not cached (7-10 ms where indexes take 2).  Estimated at 4 (the
-- lists the mall sends are a cache's misses, a page of products), it walks the indexes, and
-- still does for a page of 20 (6 ms where a scan took 7).  STRICT keeps the planner from
-- inlining the body, which would bring back the hundred.
CREATE FUNCTION id_list(ids json) RETURNS TABLE (value bigint)
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 4
    AS $$ SELECT CAST(e AS bigint) FROM json_array_elements_text(ids) AS e $$;
