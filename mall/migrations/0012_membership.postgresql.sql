-- 0012 in PostgreSQL: member prices touch their store's catalogue version (0007's function).
CREATE TRIGGER catalogue_on_member_price AFTER INSERT OR UPDATE OR DELETE ON member_prices
    FOR EACH ROW EXECUTE FUNCTION catalogue_touch();
