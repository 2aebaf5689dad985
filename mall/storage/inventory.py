"""Per-store stock.  `on_hand` is what stands on the shelf, `reserved` what open orders hold;
a CHECK keeps reserved <= on_hand, so the database itself refuses to oversell.  Every change
also writes its row of the inventory ledger (库存流水) in the same transaction: what changed,
why, and for which order."""

from __future__ import annotations

from sqlite3 import Row

from .database import Connection


async def level(conn: Connection, store_id: int, sku_id: int) -> Row | None:
    rows = await conn.execute_fetchall(
        "SELECT sku_id, on_hand, reserved, on_hand - reserved AS available, updated_at"
        " FROM inventory WHERE store_id = ? AND sku_id = ?", (store_id, sku_id))
    return rows[0] if rows else None


async def hold(conn: Connection, store_id: int, sku_id: int, now: str) -> Row | None:
    """`level`, with the row held by this transaction until it ends (an update that changes
    only its time: both engines lock a row they update), so a decision taken from the level
    (a stock sync and its ledger delta) is not undone by a concurrent reservation."""
    rows = await conn.execute_fetchall(
        "UPDATE inventory SET updated_at = ? WHERE store_id = ? AND sku_id = ?"
        " RETURNING sku_id, on_hand, reserved, on_hand - reserved AS available, updated_at",
        (now, store_id, sku_id))
    return rows[0] if rows else None


async def reserve(conn: Connection, store_id: int, sku_id: int, qty: int, now: str) -> bool:
    """Hold `qty` for an order if that many are available; one atomic conditional update.
    Its ledger row comes with the order's others (`reserved_for`), once its lines are in."""
    rows = await conn.execute_fetchall(
        "UPDATE inventory SET reserved = reserved + ?1, updated_at = ?4"
        " WHERE store_id = ?2 AND sku_id = ?3 AND on_hand - reserved >= ?1 RETURNING 1",
        (qty, store_id, sku_id, now))
    return bool(rows)


async def _lines_ledger(conn: Connection, store_id: int, order_id: int, on_hand_sign: int,
                        reserved_sign: int, reason: str, now: str) -> None:
    """One ledger row per line of the order, in one statement."""
    await conn.execute(
        "INSERT INTO inventory_ledger (store_id, sku_id, on_hand_delta, reserved_delta, reason,"
        " order_id, at) SELECT ?, sku_id, ? * qty, ? * qty, ?, order_id, ? FROM order_lines"
        " WHERE order_id = ? ORDER BY line_no",
        (store_id, on_hand_sign, reserved_sign, reason, now, order_id))


async def reserved_for(conn: Connection, store_id: int, order_id: int, now: str) -> None:
    """The ledger rows of an order's reservations (`reserve`, line by line, came first)."""
    await _lines_ledger(conn, store_id, order_id, 0, 1, "reserve", now)


async def release(conn: Connection, store_id: int, lines: list, order_id: int,
                  now: str) -> None:
    """Units an order held go back on sale: every line of the order (rows of `orders.lines`),
    in one round trip for the counts and one for the ledger."""
    await conn.executemany(
        "UPDATE inventory SET reserved = reserved - ?, updated_at = ?"
        " WHERE store_id = ? AND sku_id = ?",
        [(line["qty"], now, store_id, line["sku_id"]) for line in _by_sku(lines)])
    await _lines_ledger(conn, store_id, order_id, 0, -1, "release", now)


async def hand_over(conn: Connection, store_id: int, lines: list, order_id: int,
                    now: str) -> None:
    """Goods held for an order leave the shelf: both counts drop together, for every line
    of the order."""
    await conn.executemany(
        "UPDATE inventory SET reserved = reserved - ?1, on_hand = on_hand - ?1, updated_at = ?2"
        " WHERE store_id = ?3 AND sku_id = ?4",
        [(line["qty"], now, store_id, line["sku_id"]) for line in _by_sku(lines)])
    await _lines_ledger(conn, store_id, order_id, -1, -1, "hand_over", now)


def _by_sku(lines: list) -> list:
    """Rows are locked in one order (by SKU) everywhere, so two orders never deadlock."""
    return sorted(lines, key=lambda line: line["sku_id"])


async def set_on_hand(conn: Connection, store_id: int, sku_id: int, on_hand: int,
                      now: str) -> Row | None:
    """Absolute stock sync; refused (None) when it would fall below what orders hold.  The
    ledger row is written first, under the update's own condition, since the update's
    RETURNING shows only the new count."""
    await conn.execute(
        "INSERT INTO inventory_ledger (store_id, sku_id, on_hand_delta, reserved_delta, reason,"
        " at) SELECT store_id, sku_id, ?1 - on_hand, 0, 'stock_set', ?2 FROM inventory"
        " WHERE store_id = ?3 AND sku_id = ?4 AND reserved <= ?1",
        (on_hand, now, store_id, sku_id))
    rows = await conn.execute_fetchall(
        "UPDATE inventory SET on_hand = ?1, updated_at = ?2"
        " WHERE store_id = ?3 AND sku_id = ?4 AND reserved <= ?1"
        " RETURNING sku_id, on_hand, reserved, on_hand - reserved AS available, updated_at",
        (on_hand, now, store_id, sku_id))
    return rows[0] if rows else None


# Orders under way: not closed, or with a refund still open.
LIVE = ("pending_payment", "paid", "ready_for_pickup", "out_for_delivery", "refund_requested")
# An order holds its units on the shelf until it closes (handed over, cancelled, expired, or
# refunded before pickup): every closing sets `closed_at`.
HOLDS_STOCK = "o.closed_at IS NULL"


async def oversold_since(conn: Connection, since: str) -> list[Row]:
    """SKUs changed since `since` whose open orders hold more units than stand on the shelf:
    counted from the orders themselves, not from the `reserved` bookkeeping."""
    return list(await conn.execute_fetchall(
        "SELECT store_id, sku_id, on_hand, held FROM ("
        " SELECT i.store_id, i.sku_id, i.on_hand,"
        "  (SELECT coalesce(sum(l.qty), 0) FROM order_lines l JOIN orders o ON o.id = l.order_id"
        f"   WHERE l.sku_id = i.sku_id AND o.store_id = i.store_id AND {HOLDS_STOCK})"
        "  AS held FROM inventory i WHERE i.updated_at >= ?) AS counted"
        " WHERE held > on_hand", (since,)))

