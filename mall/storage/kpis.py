"""What the stores' dashboards read: paid orders, refunds, visits, customers, handed-over
orders and low stock, for a window of the mall's clock, per store or per district or
business circle.  Everything is summed in SQL, percentiles too (a window function), so that
the city's day (hundreds of thousands of orders) comes back as a few rows per group; the
service runs these on a connection of its own, off the event loop (`Database.scan_reader`)."""

from __future__ import annotations

from collections.abc import Iterable
from sqlite3 import Row

from .database import Connection

# The column a group is keyed by; `{t}` is the alias of the table that names the store, so
# that one store's figures are found through that table's (store_id, ...) index.
GROUPS = {"store": "{t}.store_id", "district": "s.district_code",
          "business_circle": "s.business_circle"}


def _keyed(group: str, table: str, key: object | None) -> tuple[str, str, tuple]:
    """(the key column, the condition keeping to one group or none, its parameters)."""
    column = GROUPS[group].format(t=table)
    return (column, f" AND {column} = ?", (key,)) if key is not None else (column, "", ())


async def record_visits(conn: Connection, visits: Iterable[tuple[int, str, int]]) -> None:
    """(store_id, hour stamp, user_id) rows; a visit already counted stays one."""
    await conn.executemany(
        "INSERT OR IGNORE INTO store_visits (store_id, hour, user_id) VALUES (?, ?, ?)",
        list(visits))


# The totals a dashboard shows per group: what each sums, over which rows (the alias that
# names the store), dated by which stamp, under which further condition.
TOTALS = {
    "paid": ("COUNT(*) AS paid_orders, SUM(o.total_fen) AS gmv_fen", "orders o", "o",
             "o.paid_at", ""),
    "created": ("COUNT(*) AS orders", "orders o", "o", "o.created_at", ""),
    "refunds": ("COUNT(*) AS refunds, SUM(r.amount_fen) AS refunded_fen",
                "refunds r JOIN orders o ON o.id = r.order_id", "o", "r.settled_at",
                "r.status = 'succeeded' AND "),   # paid back to the customer
    "visits": ("COUNT(*) AS visits", "store_visits v", "v", "v.hour", ""),
}


async def totals(conn: Connection, figure: str, group: str, key: object | None, since: str,
                 until: str) -> list[Row]:
    """(key, the figure's sums) per group (or for the one group `key`), of the rows dated in
    [since, until): paid orders and GMV, orders placed, refunds, visits (TOTALS)."""
    select, source, table, stamp, condition = TOTALS[figure]
    column, where, params = _keyed(group, table, key)
    return list(await conn.execute_fetchall(
        f"SELECT {column} AS key, {select} FROM {source} JOIN stores s ON s.id = {table}"
        f".store_id WHERE {condition}{stamp} >= ? AND {stamp} < ?{where} GROUP BY {column}",
        (since, until, *params)))


async def paid_by_hour(conn: Connection, group: str, key: object | None, since: str,
                       until: str) -> list[Row]:
    """(hour, paid_orders, gmv_fen) per local clock hour ("YYYY-MM-DDTHH") of the window, of
    one group or of every store."""
    _, where, params = _keyed(group, "o", key)
    return list(await conn.execute_fetchall(
        "SELECT substr(o.paid_at, 1, 13) AS hour, COUNT(*) AS paid_orders,"
        " SUM(o.total_fen) AS gmv_fen FROM orders o JOIN stores s ON s.id = o.store_id"
        f" WHERE o.paid_at >= ? AND o.paid_at < ?{where} GROUP BY 1",
        (since, until, *params)))


async def customers(conn: Connection, group: str, key: object | None, since: str,
                    until: str, month_before: str) -> list[Row]:
    """(key, paying, new, again): customers who paid in [since, until); of them, those whose
    first paid order there (ever) is in the window, and those with two or more paid there
    from `month_before` to `until`."""
    column, where, params = _keyed(group, "o", key)
    return list(await conn.execute_fetchall(
        "SELECT key, COUNT(*) AS paying, SUM(CASE WHEN first_paid >= ? THEN 1 ELSE 0 END)"
        " AS new, SUM(CASE WHEN paid_in_month >= 2 THEN 1 ELSE 0 END) AS again FROM"
        f" (SELECT {column} AS key, o.user_id, MIN(o.paid_at) AS first_paid,"
        " SUM(CASE WHEN o.paid_at >= ? THEN 1 ELSE 0 END) AS paid_in_month"
        " FROM orders o JOIN stores s ON s.id = o.store_id"
        f" WHERE o.paid_at IS NOT NULL AND o.paid_at < ?{where}"
        f" GROUP BY {column}, o.user_id HAVING MAX(o.paid_at) >= ?) AS buyers GROUP BY key",
        (since, month_before, until, *params, since)))


async def pickup_waits(conn: Connection, group: str, key: object | None, since: str,
                       until: str) -> list[Row]:
    """(key, orders, p50, p90): seconds from paid to handed over of the pickup orders handed
    over in [since, until), by the nearest-rank rule (rank ceil(p * n))."""
    column, where, params = _keyed(group, "o", key)
    return list(await conn.execute_fetchall(
        "SELECT key, n AS orders, MAX(CASE WHEN rn = (n + 1) / 2 THEN wait END) AS p50,"
        " MAX(CASE WHEN rn = (9 * n + 9) / 10 THEN wait END) AS p90 FROM"
        " (SELECT key, wait, ROW_NUMBER() OVER (PARTITION BY key ORDER BY wait) AS rn,"
        " COUNT(*) OVER (PARTITION BY key) AS n FROM"
        f" (SELECT {column} AS key,"
        " (julianday(o.handed_over_at) - julianday(o.paid_at)) * 86400 AS wait"
        " FROM orders o JOIN stores s ON s.id = o.store_id"
        " WHERE o.fulfilment = 'pickup' AND o.handed_over_at >= ? AND o.handed_over_at < ?"
        f"{where}) AS waits) AS ranked GROUP BY key, n", (since, until, *params)))


async def products_sold(conn: Connection, store_id: int, since: str, until: str) -> list[Row]:
    """(sku_id, product_name, units, gmv_fen) of the lines of orders paid in the window, at
    the prices they were sold at (before coupons and points)."""
    return list(await conn.execute_fetchall(
        "SELECT l.sku_id, l.product_name, SUM(l.qty) AS units,"
        " SUM(l.qty * l.unit_price_fen) AS gmv_fen"
        " FROM orders o JOIN order_lines l ON l.order_id = o.id"
        " WHERE o.store_id = ? AND o.paid_at >= ? AND o.paid_at < ?"
        " GROUP BY l.sku_id, l.product_name", (store_id, since, until)))


async def low_stock(conn: Connection, store_id: int, at_most: int, limit: int) -> list[Row]:
    """The store's SKUs with `at_most` or fewer available (on hand, less held), fewest first."""
    return list(await conn.execute_fetchall(
        "SELECT i.sku_id, p.name AS product_name, k.spec, i.on_hand,"
        " i.on_hand - i.reserved AS available"
        " FROM inventory i JOIN skus k ON k.id = i.sku_id JOIN products p ON p.id = k.product_id"
        " WHERE i.store_id = ? AND i.on_hand - i.reserved <= ?"
        " ORDER BY available, i.sku_id LIMIT ?", (store_id, at_most, limit)))


async def group_names(conn: Connection, group: str) -> dict[object, str]:
    """Each district's or business circle's key -> the name shown."""
    if group == "district":
        rows = await conn.execute_fetchall("SELECT code, name FROM districts")
        return {code: name for code, name in rows}
    rows = await conn.execute_fetchall(
        "SELECT DISTINCT business_circle FROM stores WHERE business_circle IS NOT NULL")
    return {name: name for (name,) in rows}
