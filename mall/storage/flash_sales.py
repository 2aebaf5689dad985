"""Flash sales (秒杀) and the orders placed in them."""

from __future__ import annotations

from sqlite3 import Row

from .database import Connection

_SALE = (
    "SELECT f.id, f.store_id, f.sku_id, f.title, f.price_fen, f.quantity, f.taken,"
    " f.per_user_limit, f.starts_at, f.ends_at, f.pay_within_seconds, s.name AS store_name,"
    " s.district_code, p.name AS product_name, k.price_fen AS list_price_fen"
    " FROM flash_sales f JOIN stores s ON s.id = f.store_id JOIN skus k ON k.id = f.sku_id"
    " JOIN products p ON p.id = k.product_id"
)


async def insert(conn: Connection, *, store_id: int, sku_id: int, title: str, price_fen: int,
                 quantity: int, per_user_limit: int, starts_at: str, ends_at: str,
                 pay_within_seconds: int, created_by: int | None, now: str) -> int:
    rows = await conn.execute_fetchall(
        "INSERT INTO flash_sales (store_id, sku_id, title, price_fen, quantity, per_user_limit,"
        " starts_at, ends_at, pay_within_seconds, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (store_id, sku_id, title, price_fen, quantity, per_user_limit, starts_at, ends_at,
         pay_within_seconds, created_by, now))
    return rows[0][0]


async def sale(conn: Connection, sale_id: int) -> Row | None:
    rows = await conn.execute_fetchall(f"{_SALE} WHERE f.id = ?", (sale_id,))
    return rows[0] if rows else None


async def not_ended(conn: Connection, now: str, store_id: int | None,
                    district_code: str | None, limit: int) -> list[Row]:
    """Sales on now or still to come, soonest to start first."""
    where, args = ["f.ends_at > ?"], [now]
    if store_id is not None:
        where.append("f.store_id = ?")
        args.append(store_id)
    if district_code is not None:
        where.append("s.district_code = ?")
        args.append(district_code)
    return list(await conn.execute_fetchall(
        f"{_SALE} WHERE {' AND '.join(where)} ORDER BY f.starts_at, f.id LIMIT ?",
        (*args, limit)))


async def take(conn: Connection, sale_id: int, qty: int) -> int | None:
    """Take `qty` units if that many are left: the units left after, or None (sold out)."""
    rows = await conn.execute_fetchall(
        "UPDATE flash_sales SET taken = taken + ?1 WHERE id = ?2 AND taken + ?1 <= quantity"
        " RETURNING quantity - taken", (qty, sale_id))
    return rows[0][0] if rows else None


async def bought_by(conn: Connection, sale_id: int, user_id: int) -> int:
    """Units a customer holds in a sale: orders closed unpaid no longer count."""
    rows = await conn.execute_fetchall(
        "SELECT coalesce(sum(qty), 0) FROM flash_sale_orders"
        " WHERE sale_id = ? AND user_id = ? AND returned_at IS NULL", (sale_id, user_id))
    return rows[0][0]


async def insert_order(conn: Connection, sale_id: int, order_id: int, user_id: int,
                       qty: int) -> None:
    await conn.execute(
        "INSERT INTO flash_sale_orders (order_id, sale_id, user_id, qty) VALUES (?, ?, ?, ?)",
        (order_id, sale_id, user_id, qty))


async def give_back(conn: Connection, order_id: int, now: str) -> int:
    """An order closed unpaid: its units go back on sale.  Returns how many (0 when the
    order was no flash-sale order)."""
    rows = await conn.execute_fetchall(
        "UPDATE flash_sale_orders SET returned_at = ? WHERE order_id = ?"
        " AND returned_at IS NULL RETURNING sale_id, qty", (now, order_id))
    if not rows:
        return 0
    sale_id, qty = rows[0]
    await conn.execute("UPDATE flash_sales SET taken = taken - ? WHERE id = ?", (qty, sale_id))
    return qty


async def oversold_since(conn: Connection, since: str) -> list[Row]:
    """Sales still running at `since` whose standing orders hold more units than the sale
    offers: counted from the orders themselves, not from the `taken` bookkeeping."""
    return list(await conn.execute_fetchall(
        "SELECT f.id AS sale_id, f.quantity, sum(o.qty) AS held FROM flash_sales f"
        " JOIN flash_sale_orders o ON o.sale_id = f.id JOIN orders r ON r.id = o.order_id"
        " WHERE f.ends_at >= ? AND r.status NOT IN ('cancelled', 'expired')"
        " GROUP BY f.id HAVING sum(o.qty) > f.quantity", (since,)))
