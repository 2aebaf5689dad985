"""`xingcheng verify`: the invariants a crash-safe, never-overselling mall keeps, checked on
its database file with the mall stopped or running (read only, nothing written).  Each
invariant is counted and its offending rows named, so a breach can be found in the data."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from .storage import invariants
from .storage.engines import read_only

SHOWN_ROWS = 20


class NotVerifiable(Exception):
    """The file is no mall database this verification can read."""


@dataclass
class Finding:
    name: str
    meaning: str
    breaches: int = 0
    rows: list[dict] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return self.breaches == 0


async def verify(db_path: Path | str, grace_seconds: float = 300.0) -> list[Finding]:
    """Every invariant of the mall at `db_path`.  `grace_seconds` (mall clock) is how late
    the sweeper may be in closing an unpaid order before that counts as a breach."""
    try:
        conn = await read_only(db_path)
    except Exception as exc:  # sqlite3, aiosqlite and asyncpg each raise several kinds
        raise NotVerifiable(f"{db_path}: {exc}") from exc
    try:
        if not await invariants.has_ledger(conn):
            raise NotVerifiable(f"{db_path} has no inventory ledger (schema < 6): a build "
                                "from before it wrote the file, or no mall of this version "
                                "has started on it yet")
        last = await invariants.last_activity(conn)
        before = ((datetime.fromisoformat(last) - timedelta(seconds=grace_seconds))
                  .isoformat(timespec="milliseconds") if last else "0")
        checks = [
            ("stock_adds_up", "on hand and reserved equal the sum of the inventory ledger "
             "(库存流水) per SKU", lambda: invariants.ledger_does_not_add_up(conn)),
            ("stock_never_negative", "on hand >= reserved >= 0 for every SKU",
             lambda: invariants.negative_stock(conn)),
            ("reserved_is_held", "reserved equals the units live orders hold",
             lambda: invariants.reserved_not_held(conn)),
            ("orders_match_ledger", "each order's ledger rows match its state (held, handed "
             "over or released)", lambda: invariants.orders_off_their_ledger(conn)),
            ("paid_once", "every paid order has exactly one successful payment of its total, "
             "and no unpaid order has one", lambda: invariants.payments_off_their_orders(conn)),
            ("no_overdue_unpaid", f"no unpaid order more than {grace_seconds:g} s past its "
             "deadline at the mall's last activity",
             lambda: invariants.overdue_unpaid(conn, before)),
            ("staff_changes_audited", "every stock set by hand and every order staff moved "
             "has its audit row", lambda: invariants.staff_changes_unaudited(conn)),
            ("coupons_add_up", "every template's claims are its coupons, within its quantity "
             "and per-customer limit; a used coupon belongs to a live or paid order of its "
             "owner; an order's total is its lines less its coupon's discount",
             lambda: invariants.coupons_off_their_orders(conn)),
            ("flash_sales_add_up", "every flash sale's taken count is the units of its "
             "standing orders, within its quantity and per-customer limit, each at its price; "
             "an order closed unpaid gave its units back",
             lambda: invariants.flash_sales_off_their_orders(conn)),
            ("refunds_match_payments", "every refund paid back matches a successful payment "
             "of its order, within its amount; a refunded order has a succeeded refund of its "
             "total; an order awaiting a refund decision has an open refund",
             lambda: invariants.refunds_off_their_payments(conn)),
            ("groups_add_up", "a group buy succeeded only with as many paid members as its "
             "size, never holds more, and one that failed left no order unpaid and open and "
             "no paid member without a refund", lambda: invariants.groups_off_their_members(conn)),
            ("points_match_ledger", "every member's points and spending are the sum of their "
             "points ledger (积分流水), each row's balance the running sum; an order redeemed "
             "the points it says, earned once when paid, and gave back what it redeemed and "
             "earned when closed unpaid or refunded",
             lambda: invariants.points_off_their_ledger(conn, before)),
        ]
        findings = []
        for name, meaning, query in checks:
            rows = await query()
            findings.append(Finding(name, meaning, len(rows),
                                    [dict(row) for row in rows[:SHOWN_ROWS]]))
        return findings
    except NotVerifiable:
        raise
    except Exception as exc:
        raise NotVerifiable(f"{db_path}: {exc}") from exc
    finally:
        await conn.close()
