"""How a store is doing (门店运营看板): GMV, orders, refunds, conversion from visits,
repurchase, new and returning customers, top products, low stock, pickup waiting time and
when orders come, for a window of the mall's clock; and the same figures by district and
business circle for operators.

Every figure is recomputed from the orders, refunds and inventory as they are, so it agrees
with the database to the fen; the only thing counted for the dashboards alone is a visit.
A visit is a customer viewing a store's catalogue, once per customer, store and clock hour:
the catalogue answers first and the visits are written behind it, a batch per sweep, so a
crest's catalogue pages cost no extra write each (a crash loses at most a sweep's visits)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta

from shared.clock import SHANGHAI, Clock

from ..errors import BadRequest, NotFound
from ..schemas import KpisQuery
from ..storage import Database
from ..storage import kpis as stored

LOW_STOCK_AT_MOST = 5      # available units at which a SKU is shown as running low
LOW_STOCK_SHOWN = 20
TOP_PRODUCTS = 10
REPURCHASE_DAYS = 30       # a customer repurchases with a second paid order within this
LONGEST = {"hour": timedelta(days=31), "day": timedelta(days=366)}
STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


class VisitCounter:
    """Visits seen by this process and not yet written; each is written once."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db, self.clock = db, clock
        self.pending: set[tuple[int, str, int]] = set()
        self.written: set[tuple[int, str, int]] = set()   # this hour's and the last's

    def saw(self, store_id: int, user_id: int) -> None:
        hour = self.clock.stamp(self.clock.now().replace(minute=0, second=0, microsecond=0))
        visit = (store_id, hour, user_id)
        if visit not in self.written:
            self.pending.add(visit)

    async def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, set()
        try:
            await self.db.transaction(lambda conn: stored.record_visits(conn, batch))
        except BaseException:
            self.pending |= batch   # the next sweep tries them again
            raise
        hour = self.clock.stamp(self.clock.now().replace(minute=0, second=0, microsecond=0)
                                - timedelta(hours=1))
        self.written = {v for v in self.written | batch if v[1] >= hour}


def nearest_rank(ordered: list[float], share: float) -> float | None:
    """The p-quantile of sorted values by the nearest-rank rule (no interpolation)."""
    if not ordered:
        return None
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


class StoreKpis:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db, self.clock = db, clock
        self.visits = VisitCounter(db, clock)

    def window(self, query: KpisQuery) -> tuple[datetime, datetime, str]:
        """[since, until) on the mall's clock: the days or instants asked, by default the
        current local day."""
        since = _instant(query.from_, "from") if query.from_ else \
            self.clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
        until = _instant(query.to, "to") if query.to else since + timedelta(days=1)
        if until <= since:
            raise BadRequest("invalid_window", "to must be later than from", "to")
        if until - since > LONGEST[query.granularity]:
            raise BadRequest("invalid_window", f"a window by {query.granularity} spans at "
                             f"most {LONGEST[query.granularity].days} days", "to")
        return since, until, query.granularity

    async def for_store(self, store_id: int, query: KpisQuery) -> dict:
        since, until, granularity = self.window(query)
        await self.visits.flush()   # this process's visits so far count
        conn = self.db.reader()
        store = await conn.execute_fetchall("SELECT name FROM stores WHERE id = ?",
                                            (store_id,))
        if not store:
            raise NotFound("store", "store_id")
        s, u = self.clock.stamp(since), self.clock.stamp(until)
        paid = await stored.paid_orders(conn, "store", store_id, s, u)
        figures = (await self._figures(conn, "store", store_id, since, until))[store_id]
        sold = await stored.products_sold(conn, store_id, s, u)
        low = await stored.low_stock(conn, store_id, LOW_STOCK_AT_MOST, LOW_STOCK_SHOWN)
        return {
            "store_id": store_id, "store_name": store[0][0], "from": s, "to": u,
            "granularity": granularity, **figures,
            "series": _series(paid, since, until, granularity, self.clock),
            "heatmap": _heatmap(paid),
            "top_products": {
                "by_units": [dict(row) for row in sorted(
                    sold, key=lambda r: (-r["units"], r["sku_id"]))[:TOP_PRODUCTS]],
                "by_gmv": [dict(row) for row in sorted(
                    sold, key=lambda r: (-r["gmv_fen"], r["sku_id"]))[:TOP_PRODUCTS]]},
            "low_stock": [dict(row) for row in low],
            "low_stock_at_most": LOW_STOCK_AT_MOST,
        }

    async def by_area(self, query: KpisQuery) -> dict:
        """The operator's view: the figures by district and by business circle, and for the
        whole city."""
        since, until, granularity = self.window(query)
        await self.visits.flush()
        conn = self.db.reader()
        out: dict = {"from": self.clock.stamp(since), "to": self.clock.stamp(until)}
        for group, title in (("district", "districts"), ("business_circle",
                                                          "business_circles")):
            names = await stored.group_names(conn, group)
            figures = await self._figures(conn, group, None, since, until)
            out[title] = sorted(({"key": key, "name": names.get(key, str(key)), **f}
                                 for key, f in figures.items() if key is not None),
                                key=lambda row: (-row["gmv_fen"], str(row["key"])))
        paid = await stored.paid_orders(conn, "district", None, self.clock.stamp(since),
                                        self.clock.stamp(until))
        out["series"] = _series(paid, since, until, granularity, self.clock)
        out["heatmap"] = _heatmap(paid)
        return out

    async def _figures(self, conn, group: str, key: object | None, since: datetime,
                       until: datetime) -> dict[object, dict]:
        """The scalar figures of each group (of the one group `key`, or of all)."""
        s, u = self.clock.stamp(since), self.clock.stamp(until)
        month = self.clock.stamp(until - timedelta(days=REPURCHASE_DAYS))
        paid: dict[object, list] = defaultdict(list)
        for row in await stored.paid_orders(conn, group, key, s, u):
            paid[row["key"]].append(row["total_fen"])
        refunds = {row["key"]: row for row in await stored.refunds(conn, group, key, s, u)}
        visits = {row["key"]: row["visits"]
                  for row in await stored.visits(conn, group, key, s, u)}
        created = {row["key"]: row["orders"]
                   for row in await stored.orders_created(conn, group, key, s, u)}
        buyers: dict[object, list] = defaultdict(list)
        for row in await stored.customers(conn, group, key, s, u, month):
            buyers[row["key"]].append(row)
        waits: dict[object, list[float]] = defaultdict(list)
        for row in await stored.handed_over(conn, group, key, s, u):
            waits[row["key"]].append((datetime.fromisoformat(row["handed_over_at"])
                                      - datetime.fromisoformat(row["paid_at"])).total_seconds())
        keys = {key} if key is not None else set(paid) | set(refunds) | set(visits) | set(
            created) | set(waits)
        return {k: _scalars(paid.get(k, []), refunds.get(k), visits.get(k, 0),
                            created.get(k, 0), buyers.get(k, []), sorted(waits.get(k, [])), s)
                for k in keys}


def _scalars(paid: list[int], refund, visits: int, created: int, buyers: list, waits: list,
             since: str) -> dict:
    gmv, orders = sum(paid), len(paid)
    refunds = refund["refunds"] if refund else 0
    new = sum(1 for b in buyers if b["first_paid"] >= since)
    again = sum(1 for b in buyers if b["paid_in_month"] >= 2)
    return {
        "gmv_fen": gmv, "paid_orders": orders,
        "avg_order_fen": gmv // orders if orders else None,
        "refunds": refunds, "refunded_fen": refund["refunded_fen"] if refund else 0,
        "refund_rate": _ratio(refunds, orders),
        "visits": visits, "orders_created": created, "conversion": _ratio(orders, visits),
        "funnel": [{"stage": "visits", "label": "进店", "count": visits},
                   {"stage": "ordered", "label": "下单", "count": created},
                   {"stage": "paid", "label": "支付", "count": orders}],
        "customers": {"paying": len(buyers), "new": new, "returning": len(buyers) - new,
                      "repurchase_rate": _ratio(again, len(buyers))},
        "pickup_wait_s": {"orders": len(waits), "p50": nearest_rank(waits, 0.5),
                          "p90": nearest_rank(waits, 0.9)},
    }


def _series(paid: list, since: datetime, until: datetime, granularity: str,
            clock: Clock) -> list[dict]:
    """GMV and paid orders per hour or local day of the window, empty buckets included."""
    width = 13 if granularity == "hour" else 10      # "YYYY-MM-DDTHH" or "YYYY-MM-DD"
    buckets: dict[str, list[int]] = {}
    at = since.astimezone(SHANGHAI)
    at = at.replace(minute=0, second=0, microsecond=0) if granularity == "hour" else \
        at.replace(hour=0, minute=0, second=0, microsecond=0)
    while at < until:
        buckets[clock.stamp(at)[:width]] = [0, 0]
        at += STEP[granularity]
    for row in paid:
        bucket = buckets.get(row["paid_at"][:width])
        if bucket is not None:
            bucket[0] += row["total_fen"]
            bucket[1] += 1
    return [{"at": at, "gmv_fen": gmv, "paid_orders": n} for at, (gmv, n) in buckets.items()]


def _heatmap(paid: list) -> dict:
    """Paid orders by weekday (Monday first) and local hour."""
    counts = [[0] * 24 for _ in WEEKDAYS]
    for row in paid:
        at = datetime.fromisoformat(row["paid_at"])
        counts[at.weekday()][at.hour] += 1
    return {"weekdays": list(WEEKDAYS), "hours": list(range(24)), "counts": counts}


def _instant(text: str, field: str) -> datetime:
    """A local day (YYYY-MM-DD: its midnight) or an instant (ISO 8601; Asia/Shanghai when
    it names no offset)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest("invalid_time", f"{field} must be a day (YYYY-MM-DD) or an ISO 8601 "
                         "instant", field) from exc
    return moment.replace(tzinfo=SHANGHAI) if moment.tzinfo is None else moment
