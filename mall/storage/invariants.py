"""The queries `xingcheng verify` asks of a mall's database: each returns the rows that break
one invariant (empty when it holds).  They read only, and each is a scan the indexes bound:
inventory and its ledger by SKU, orders by id, payments by order."""

from __future__ import annotations

from sqlite3 import Row

from .database import Connection
from .inventory import HOLDS_STOCK

_PAID = ("('paid', 'ready_for_pickup', 'out_for_delivery', 'completed', 'refund_requested',"
         " 'refund_rejected', 'refunded')")


async def _rows(conn: Connection, sql: str, args: tuple = ()) -> list[Row]:
    return list(await conn.execute_fetchall(sql, args))


async def ledger_does_not_add_up(conn: Connection) -> list[Row]:
    """SKUs whose on-hand or reserved count differs from the sum of their ledger rows: a
    change made without its ledger row, or a ledger row without its change."""
    return await _rows(conn, (
        "SELECT i.store_id, i.sku_id, i.on_hand, i.reserved,"
        " coalesce(l.on_hand, 0) AS ledger_on_hand, coalesce(l.reserved, 0) AS ledger_reserved"
        " FROM inventory i LEFT JOIN (SELECT store_id, sku_id, sum(on_hand_delta) AS on_hand,"
        "  sum(reserved_delta) AS reserved FROM inventory_ledger GROUP BY store_id, sku_id) l"
        " ON l.store_id = i.store_id AND l.sku_id = i.sku_id"
        " WHERE i.on_hand != coalesce(l.on_hand, 0) OR i.reserved != coalesce(l.reserved, 0)"))


async def negative_stock(conn: Connection) -> list[Row]:
    return await _rows(conn, (
        "SELECT store_id, sku_id, on_hand, reserved FROM inventory"
        " WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand"))


async def reserved_not_held(conn: Connection) -> list[Row]:
    """SKUs whose reserved count is not what open orders hold of them."""
    return await _rows(conn, (
        "SELECT i.store_id, i.sku_id, i.reserved, coalesce(h.held, 0) AS held FROM inventory i"
        " LEFT JOIN (SELECT o.store_id, l.sku_id, sum(l.qty) AS held FROM orders o"
        f"  JOIN order_lines l ON l.order_id = o.id WHERE {HOLDS_STOCK}"
        "  GROUP BY o.store_id, l.sku_id) h ON h.store_id = i.store_id AND h.sku_id = i.sku_id"
        " WHERE i.reserved != coalesce(h.held, 0)"))


async def orders_off_their_ledger(conn: Connection) -> list[Row]:
    """Order lines whose ledger rows do not match the order's state: an open order holds its
    units, one whose goods left handed them over, any other closed one released them.  Orders from
    before the ledger opened are not judged (their units are in the opening rows)."""
    return await _rows(conn, (
        "SELECT o.id AS order_id, l.sku_id, o.status, l.qty,"
        " coalesce(g.reserved, 0) AS ledger_reserved, coalesce(g.on_hand, 0) AS ledger_on_hand"
        " FROM orders o JOIN order_lines l ON l.order_id = o.id"
        " LEFT JOIN (SELECT order_id, sku_id, sum(reserved_delta) AS reserved,"
        "  sum(on_hand_delta) AS on_hand FROM inventory_ledger WHERE order_id IS NOT NULL"
        "  GROUP BY order_id, sku_id) g ON g.order_id = o.id AND g.sku_id = l.sku_id"
        " WHERE o.created_at >= coalesce((SELECT min(at) FROM inventory_ledger"
        "  WHERE reason != 'opening'), '9999')"
        f" AND (coalesce(g.reserved, 0) != CASE WHEN {HOLDS_STOCK} THEN l.qty ELSE 0 END"
        f"  OR coalesce(g.on_hand, 0) != CASE WHEN {await _handed_over(conn)} THEN -l.qty"
        "  ELSE 0 END)"
    ))


async def payments_off_their_orders(conn: Connection) -> list[Row]:
    """Orders paid or beyond without exactly one successful payment of their total, and
    orders with a successful payment that are not paid (money taken for a closed order)."""
    return await _rows(conn, (
        "SELECT o.id AS order_id, o.status, o.total_fen, count(p.id) AS succeeded,"
        " coalesce(sum(p.amount_fen), 0) AS charged_fen FROM orders o"
        " LEFT JOIN payments p ON p.order_id = o.id AND p.status = 'succeeded'"
        " GROUP BY o.id HAVING"
        f" (o.status IN {_PAID} AND (count(p.id) != 1 OR sum(p.amount_fen) != o.total_fen))"
        f" OR (o.status NOT IN {_PAID} AND count(p.id) > 0)"))


async def overdue_unpaid(conn: Connection, before: str) -> list[Row]:
    """Unpaid orders whose deadline passed before `before`: the sweeper should have closed
    them (and given their stock back)."""
    return await _rows(conn, (
        "SELECT id AS order_id, expires_at FROM orders"
        " WHERE status = 'pending_payment' AND expires_at < ?"), (before,))


_AFTER_LOAD = ("(SELECT coalesce(min(at), '') FROM inventory_ledger"
               " WHERE reason = 'opening')")


def _issued_unaudited(table: str, action: str) -> str:
    """Campaigns (coupon templates, flash sales) set up by a merchant or an operator without
    their audit row: a city's own campaigns name no one."""
    return (f" UNION ALL SELECT '{action}', t.store_id, t.id, t.created_at FROM {table} t"
            f" WHERE t.created_by IS NOT NULL AND NOT EXISTS (SELECT 1 FROM audit_log a"
            f"  WHERE a.action = '{action}' AND a.target_id = CAST(t.id AS TEXT))")


async def staff_changes_unaudited(conn: Connection) -> list[Row]:
    """Changes only staff or operators make, without the audit row that says who: stores
    onboarded, staff bound, products added (those a city's load made are not judged: they
    came with it), coupons issued, flash sales set up, stock set by hand, orders made ready,
    dispatched or completed."""
    return await _rows(conn, (
        "SELECT 'store.create' AS change, s.id AS store_id, s.id AS target, s.created_at AS at"
        f" FROM stores s WHERE s.created_at > {_AFTER_LOAD} AND NOT EXISTS (SELECT 1"
        "  FROM audit_log a WHERE a.action = 'store.create'"
        "  AND a.target_id = CAST(s.id AS TEXT))"
        " UNION ALL SELECT 'store.staff.add', f.store_id, f.user_id, f.created_at"
        f" FROM store_staff f WHERE f.created_at > {_AFTER_LOAD} AND NOT EXISTS (SELECT 1"
        "  FROM audit_log a WHERE a.action = 'store.staff.add' AND a.store_id = f.store_id"
        "  AND a.target_id = CAST(f.user_id AS TEXT))"
        " UNION ALL SELECT 'product.create', p.store_id, k.id, k.created_at FROM skus k"
        f" JOIN products p ON p.id = k.product_id WHERE k.created_at > {_AFTER_LOAD}"
        "  AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.action = 'product.create'"
        "  AND a.target_id = CAST(k.id AS TEXT))"
        f"{await _campaigns_unaudited(conn)}"
        " UNION ALL "
        "SELECT 'stock_set', l.store_id, l.sku_id, l.at FROM inventory_ledger l"
        " WHERE l.reason = 'stock_set' AND NOT EXISTS (SELECT 1 FROM audit_log a"
        "  WHERE a.action = 'inventory.set' AND a.store_id = l.store_id"
        "  AND a.target_id = CAST(l.sku_id AS TEXT) AND a.at = l.at)"
        " UNION ALL SELECT 'order.' || need.action, o.store_id, o.id, o.closed_at FROM orders o"
        " JOIN (SELECT 'ready' AS action, 'pickup' AS fulfilment, 'ready_for_pickup' AS status"
        "  UNION ALL SELECT 'ready', 'pickup', 'completed'"
        "  UNION ALL SELECT 'dispatched', 'delivery', 'out_for_delivery'"
        "  UNION ALL SELECT 'dispatched', 'delivery', 'completed'"
        "  UNION ALL SELECT 'complete', 'pickup', 'completed'"
        "  UNION ALL SELECT 'complete', 'delivery', 'completed') need"
        "  ON need.fulfilment = o.fulfilment AND need.status = o.status"
        # A customer may collect a paid order before staff marked it ready: no 'ready' then.
        " WHERE NOT (need.action = 'ready' AND o.ready_at IS NULL)"
        "  AND NOT EXISTS (SELECT 1 FROM audit_log a WHERE a.target_type = 'order'"
        "  AND a.target_id = CAST(o.id AS TEXT) AND a.action = 'order.' || need.action)"))


async def _campaigns_unaudited(conn: Connection) -> str:
    """The campaign tables this database has (a file from before them has none)."""
    present = [(table, action) for table, action in (
        ("coupon_templates", "coupon.create"), ("flash_sales", "flash_sale.create"),
        ("group_buys", "group_buy.create"))
        if await _has_table(conn, table)]
    return "".join(_issued_unaudited(table, action) for table, action in present)


async def flash_sales_off_their_orders(conn: Connection) -> list[Row]:
    """Flash-sale breaches: a sale whose taken count is not the units of its orders still
    standing, or beyond its quantity; a customer over its limit; an order closed unpaid
    whose units were not given back, or given back while it stands; an order not of the
    sale's SKU at the sale's price.  A database from before flash sales has none."""
    if not await _has_table(conn, "flash_sales"):
        return []
    return await _rows(conn, (
        "SELECT 'taken_not_orders' AS breach, f.id AS sale_id, CAST(NULL AS INTEGER) AS order_id,"
        " CAST(f.taken AS TEXT) AS expected, CAST(coalesce(sum(o.qty), 0) AS TEXT) AS found"
        " FROM flash_sales f"
        " LEFT JOIN flash_sale_orders o ON o.sale_id = f.id AND o.returned_at IS NULL"
        " GROUP BY f.id HAVING f.taken != coalesce(sum(o.qty), 0) OR f.taken > f.quantity"
        " UNION ALL SELECT 'over_limit', f.id, NULL, CAST(f.per_user_limit AS TEXT),"
        " CAST(sum(o.qty) AS TEXT)"
        " FROM flash_sale_orders o JOIN flash_sales f ON f.id = o.sale_id"
        " WHERE o.returned_at IS NULL GROUP BY o.sale_id, o.user_id, f.id"
        " HAVING sum(o.qty) > f.per_user_limit"
        " UNION ALL SELECT 'returned_not_closed', o.sale_id, o.order_id,"
        " CAST(o.returned_at IS NOT NULL AS TEXT), r.status FROM flash_sale_orders o"
        " JOIN orders r ON r.id = o.order_id"
        " WHERE (o.returned_at IS NOT NULL) != (r.status IN ('cancelled', 'expired'))"
        " UNION ALL SELECT 'not_the_sale_line', o.sale_id, o.order_id,"
        " CAST(f.price_fen AS TEXT), CAST(l.unit_price_fen AS TEXT)"
        " FROM flash_sale_orders o JOIN flash_sales f ON f.id = o.sale_id"
        " JOIN order_lines l ON l.order_id = o.order_id"
        " WHERE l.sku_id != f.sku_id OR l.unit_price_fen != f.price_fen OR l.qty != o.qty"))


async def refunds_off_their_payments(conn: Connection) -> list[Row]:
    """Refund breaches: a refund paid back against a payment that did not succeed, of
    another order, or beyond its amount; a refunded order without a succeeded refund of its
    total, or a succeeded refund whose order is not refunded; an order awaiting a refund
    decision without an open refund, or an open refund whose order does not await it.  A
    database from before after-sales (schema < 10) has none."""
    if not await _has_table(conn, "refunds"):
        return []
    return await _rows(conn, (
        "SELECT 'not_its_payment' AS breach, r.order_id, r.id AS refund_id,"
        " CAST(r.amount_fen AS TEXT) AS expected, CAST(p.amount_fen AS TEXT) AS found"
        " FROM refunds r"
        " JOIN payments p ON p.id = r.payment_id WHERE p.status != 'succeeded'"
        "  OR p.order_id != r.order_id OR r.amount_fen > p.amount_fen"
        " UNION ALL SELECT 'refunded_without_refund', o.id, r.id, CAST(o.total_fen AS TEXT),"
        " CAST(r.amount_fen AS TEXT)"
        " FROM orders o LEFT JOIN refunds r ON r.order_id = o.id AND r.status = 'succeeded'"
        " WHERE o.status = 'refunded' AND (r.id IS NULL OR r.amount_fen != o.total_fen)"
        " UNION ALL SELECT 'refund_without_refunded_order', o.id, r.id, 'refunded', o.status"
        " FROM refunds r JOIN orders o ON o.id = r.order_id"
        " WHERE r.status = 'succeeded' AND o.status != 'refunded'"
        " UNION ALL SELECT 'request_without_refund', o.id, r.id, 'open refund', r.status"
        " FROM orders o LEFT JOIN refunds r ON r.order_id = o.id"
        " WHERE o.status = 'refund_requested'"
        "  AND (r.id IS NULL OR r.status NOT IN ('requested', 'approved', 'processing'))"
        " UNION ALL SELECT 'open_refund_order_moved', o.id, r.id, 'refund_requested', o.status"
        " FROM refunds r JOIN orders o ON o.id = r.order_id"
        " WHERE r.status IN ('requested', 'approved', 'processing') AND r.cause = 'customer'"
        "  AND o.status != 'refund_requested'"))


async def groups_off_their_members(conn: Connection) -> list[Row]:
    """Group-buy breaches: a group that succeeded with fewer paid members than its size, or
    holds more standing members than its size; a group that failed while a member's order
    stays unpaid and open, or keeps a paid member's money without a refund.  A database
    from before group buys (schema < 11) has none."""
    if not await _has_table(conn, "buy_groups"):
        return []
    standing = ("(SELECT count(*) FROM group_members m JOIN orders o ON o.id = m.order_id"
                " WHERE m.group_id = b.id AND o.status NOT IN ('cancelled', 'expired'))")
    paid = ("(SELECT count(*) FROM group_members m JOIN orders o ON o.id = m.order_id"
            " WHERE m.group_id = b.id AND o.paid_at IS NOT NULL)")
    return await _rows(conn, (
        f"SELECT 'succeeded_short' AS breach, b.id AS group_id, CAST(NULL AS INTEGER) AS order_id,"
        f" CAST(g.group_size AS TEXT) AS expected, CAST({paid} AS TEXT) AS found"
        " FROM buy_groups b"
        f" JOIN group_buys g ON g.id = b.group_buy_id"
        f" WHERE b.status = 'succeeded' AND {paid} < g.group_size"
        f" UNION ALL SELECT 'overfilled', b.id, NULL, CAST(g.group_size AS TEXT),"
        f" CAST({standing} AS TEXT)"
        f" FROM buy_groups b JOIN group_buys g ON g.id = b.group_buy_id"
        f" WHERE {standing} > g.group_size"
        " UNION ALL SELECT 'failed_but_unpaid_open', b.id, o.id, 'cancelled', o.status"
        " FROM buy_groups b JOIN group_members m ON m.group_id = b.id"
        " JOIN orders o ON o.id = m.order_id"
        " WHERE b.status = 'failed' AND o.status = 'pending_payment'"
        " UNION ALL SELECT 'failed_but_kept_money', b.id, o.id, 'refund', o.status"
        " FROM buy_groups b JOIN group_members m ON m.group_id = b.id"
        " JOIN orders o ON o.id = m.order_id"
        " WHERE b.status = 'failed' AND o.paid_at IS NOT NULL"
        "  AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = o.id)"))


async def coupons_off_their_orders(conn: Connection) -> list[Row]:
    """Coupon breaches: a template whose claim count is not its coupons or is beyond its
    quantity; a customer over a template's limit; a coupon used by no order, another
    customer's, or a closed one; an order under way whose total is not its lines less its
    coupon's discount.  A database from before coupons (schema < 8) has none to break."""
    if not await _has_table(conn, "user_coupons"):
        return []
    # From schema 12 an order's points take their fen off its total too.
    points = "o.points_fen" if await _has_table(conn, "points_ledger") else "0"
    return await _rows(conn, (
        "SELECT 'claims_not_coupons' AS breach, t.id AS template_id,"
        " CAST(NULL AS INTEGER) AS coupon_id, CAST(NULL AS INTEGER) AS order_id,"
        " CAST(t.claimed AS TEXT) AS expected, CAST(count(c.id) AS TEXT) AS found"
        " FROM coupon_templates t LEFT JOIN user_coupons c ON c.template_id = t.id"
        " GROUP BY t.id HAVING count(c.id) != t.claimed OR t.claimed > t.total_qty"
        " UNION ALL SELECT 'over_limit', c.template_id, NULL, NULL,"
        " CAST(t.per_user_limit AS TEXT), CAST(count(*) AS TEXT)"
        " FROM user_coupons c JOIN coupon_templates t ON t.id = c.template_id"
        " GROUP BY c.template_id, c.user_id, t.id HAVING count(*) > t.per_user_limit"
        " UNION ALL SELECT 'used_off_its_order', c.template_id, c.id, c.order_id, NULL,"
        " o.status FROM user_coupons c LEFT JOIN orders o ON o.id = c.order_id"
        " WHERE c.status = 'used' AND (o.id IS NULL OR o.user_id != c.user_id"
        "  OR o.status IN ('cancelled', 'expired', 'refunded'))"
        " UNION ALL SELECT 'total_not_lines_less_discount', c.template_id, c.id, o.id,"
        f" CAST(l.subtotal - coalesce(c.discount_fen, 0) - {points} AS TEXT),"
        " CAST(o.total_fen AS TEXT) FROM orders o"
        " JOIN (SELECT order_id, sum(unit_price_fen * qty) AS subtotal FROM order_lines"
        "  GROUP BY order_id) l ON l.order_id = o.id"
        " LEFT JOIN user_coupons c ON c.order_id = o.id"
        " WHERE o.status NOT IN ('cancelled', 'expired', 'refunded')"
        f"  AND o.total_fen != l.subtotal - coalesce(c.discount_fen, 0) - {points}"))


async def points_off_their_ledger(conn: Connection, before: str) -> list[Row]:
    """Membership breaches: a member whose points or spending is not the sum of their ledger;
    a ledger row whose balance is not the running sum before it; an order whose points are
    not the ones its ledger redeemed; an order closed unpaid or refunded that kept points it
    redeemed or earned; an order paid since membership began (and before `before`: the
    sweeper makes up for a build that paid without earning) that is not refunded and never
    earned.  A database from before membership (schema < 12) has none to break."""
    if not await _has_table(conn, "points_ledger"):
        return []
    return await _rows(conn, (
        "SELECT 'balance_not_ledger' AS breach, m.user_id, CAST(NULL AS INTEGER) AS order_id,"
        " coalesce(l.points, 0) AS expected, m.points AS found FROM members m"
        " LEFT JOIN (SELECT user_id, sum(points) AS points, sum(spent_fen) AS spent"
        "  FROM points_ledger GROUP BY user_id) l ON l.user_id = m.user_id"
        " WHERE m.points != coalesce(l.points, 0) OR m.spent_fen != coalesce(l.spent, 0)"
        " UNION ALL SELECT 'ledger_without_member', l.user_id, NULL, NULL, NULL"
        " FROM points_ledger l LEFT JOIN members m ON m.user_id = l.user_id"
        " WHERE m.user_id IS NULL GROUP BY l.user_id"
        " UNION ALL SELECT 'running_balance', user_id, order_id, running, balance FROM"
        " (SELECT user_id, order_id, balance, sum(points) OVER (PARTITION BY user_id"
        "  ORDER BY id) AS running FROM points_ledger) AS runs WHERE running != balance"
        " UNION ALL SELECT 'order_points_not_redeemed', o.user_id, o.id, o.points_used,"
        " -coalesce(r.points, 0) FROM orders o LEFT JOIN points_ledger r"
        "  ON r.order_id = o.id AND r.reason = 'redeemed'"
        " WHERE o.points_used != -coalesce(r.points, 0)"
        "  OR (r.id IS NOT NULL AND r.user_id != o.user_id)"
        " UNION ALL SELECT 'kept_after_close', o.user_id, o.id, 0, sum(l.points)"
        " FROM orders o JOIN points_ledger l ON l.order_id = o.id"
        " WHERE o.status IN ('cancelled', 'expired', 'refunded')"
        " GROUP BY o.id HAVING sum(l.points) != 0 OR sum(l.spent_fen) != 0"
        " UNION ALL SELECT 'earned_not_paid', o.user_id, o.id, o.total_fen, e.spent_fen"
        " FROM points_ledger e JOIN orders o ON o.id = e.order_id"
        " WHERE e.reason = 'earned' AND (o.paid_at IS NULL OR e.spent_fen != o.total_fen)"
        " UNION ALL SELECT 'paid_not_earned', o.user_id, o.id, o.total_fen, NULL FROM orders o"
        " WHERE o.paid_at >= (SELECT applied_at FROM schema_migrations WHERE version = 12)"
        "  AND o.paid_at < ? AND o.status != 'refunded'"
        "  AND NOT EXISTS (SELECT 1 FROM points_ledger e WHERE e.order_id = o.id"
        "   AND e.reason = 'earned')"), (before,))


async def last_activity(conn: Connection) -> str | None:
    """The mall clock's latest stamp in the data: when the mall last did something.  Overdue
    is judged against it, not against now: a stopped mall expires nothing."""
    rows = await conn.execute_fetchall(
        "SELECT max(at) FROM (SELECT max(created_at) AS at FROM orders"
        " UNION ALL SELECT max(closed_at) FROM orders UNION ALL SELECT max(at)"
        " FROM inventory_ledger UNION ALL SELECT max(settled_at) FROM payments) AS moments")
    return rows[0][0] if rows else None


async def has_ledger(conn: Connection) -> bool:
    return await _has_table(conn, "inventory_ledger")


async def _handed_over(conn: Connection) -> str:
    """Whether an order's goods left the store: its own column from schema 10 on (a refund
    changes the status), its status before."""
    columns = {row[1] for row in await conn.execute_fetchall("PRAGMA table_info(orders)")}
    return ("o.handed_over_at IS NOT NULL" if "handed_over_at" in columns
            else "o.status = 'completed'")


async def _has_table(conn: Connection, name: str) -> bool:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return bool(rows)
