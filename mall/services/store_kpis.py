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

from datetime import datetime, timedelta

from shared.clock import SHANGHAI, Clock

from ..errors import BadRequest, NotFound
from ..schemas import KpisQuery
from ..storage import Database, stores
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
        self._hour_from, self._hour = datetime(2000, 1, 1, tzinfo=SHANGHAI), ""

    def saw(self, store_id: int, user_id: int) -> None:
        now = self.clock.now()
        if not self._hour_from <= now < self._hour_from + timedelta(hours=1):
            self._hour_from = now.replace(minute=0, second=0, microsecond=0)
            self._hour = self.clock.stamp(self._hour_from)   # once an hour, not per view
        visit = (store_id, self._hour, user_id)
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
        conn = self.db.scan_reader()
        store = await stores.store(conn, store_id)
        if store is None:
            raise NotFound("store", "store_id")
        s, u = self.clock.stamp(since), self.clock.stamp(until)
        figures = (await self._figures(conn, "store", store_id, since, until))[store_id]
        hours = await stored.paid_by_hour(conn, "store", store_id, s, u)
        sold = await stored.products_sold(conn, store_id, s, u)
        low = await stored.low_stock(conn, store_id, LOW_STOCK_AT_MOST, LOW_STOCK_SHOWN)
        return {
            "store_id": store_id, "store_name": store["name"], "from": s, "to": u,
            "granularity": granularity, **figures,
            "series": _series(hours, since, until, granularity, self.clock),
            "heatmap": _heatmap(hours),
            "top_products": {
                "by_units": [dict(row) for row in sorted(
                    sold, key=lambda r: (-r["units"], r["sku_id"]))[:TOP_PRODUCTS]],
                "by_gmv": [dict(row) for row in sorted(
                    sold, key=lambda r: (-r["gmv_fen"], r["sku_id"]))[:TOP_PRODUCTS]]},
            "low_stock": [dict(row) for row in low],
            "low_stock_at_most": LOW_STOCK_AT_MOST,
        }

    async def by_area(self, query: KpisQuery) -> dict:
        """The operator's view: the figures by district and by business circle, and the
        city's hours."""
        since, until, granularity = self.window(query)
        await self.visits.flush()
        conn = self.db.scan_reader()
        out: dict = {"from": self.clock.stamp(since), "to": self.clock.stamp(until),
                     "granularity": granularity}
        for group, title in (("district", "districts"), ("business_circle",
                                                          "business_circles")):
            names = await stored.group_names(conn, group)
            figures = await self._figures(conn, group, None, since, until)
            out[title] = sorted(({"key": key, "name": names.get(key, str(key)), **f}
                                 for key, f in figures.items() if key is not None),
                                key=lambda row: (-row["gmv_fen"], str(row["key"])))
        hours = await stored.paid_by_hour(conn, "district", None, out["from"], out["to"])
        out["series"] = _series(hours, since, until, granularity, self.clock)
        out["heatmap"] = _heatmap(hours)
        return out

    async def _figures(self, conn, group: str, key: object | None, since: datetime,
                       until: datetime) -> dict[object, dict]:
        """The scalar figures of each group (of the one group `key`, or of all)."""
        s, u = self.clock.stamp(since), self.clock.stamp(until)
        month = self.clock.stamp(until - timedelta(days=REPURCHASE_DAYS))

        def by_key(rows) -> dict:
            return {row["key"]: row for row in rows}

        paid, refunds, visits, created = [
            by_key(await stored.totals(conn, figure, group, key, s, u))
            for figure in ("paid", "refunds", "visits", "created")]
        buyers = by_key(await stored.customers(conn, group, key, s, u, month))
        waits = by_key(await stored.pickup_waits(conn, group, key, s, u))
        keys = {key} if key is not None else set().union(paid, refunds, visits, created,
                                                          waits)
        return {k: _scalars(paid.get(k), refunds.get(k), visits.get(k), created.get(k),
                            buyers.get(k), waits.get(k)) for k in keys}


def _scalars(paid, refund, visit, created, buyers, waits) -> dict:
    """A group's figures from its rows (None where it had none)."""
    gmv, orders = (paid["gmv_fen"], paid["paid_orders"]) if paid else (0, 0)
    refunds = refund["refunds"] if refund else 0
    visits = visit["visits"] if visit else 0
    placed = created["orders"] if created else 0
    paying, new, again = (buyers["paying"], buyers["new"], buyers["again"]) if buyers else \
        (0, 0, 0)
    return {
        "gmv_fen": gmv, "paid_orders": orders,
        "avg_order_fen": gmv // orders if orders else None,
        "refunds": refunds, "refunded_fen": refund["refunded_fen"] if refund else 0,
        "refund_rate": _ratio(refunds, orders),
        "visits": visits, "orders_created": placed, "conversion": _ratio(orders, visits),
        "funnel": [{"stage": "visits", "label": "进店", "count": visits},
                   {"stage": "ordered", "label": "下单", "count": placed},
                   {"stage": "paid", "label": "支付", "count": orders}],
        "customers": {"paying": paying, "new": new, "returning": paying - new,
                      "repurchase_rate": _ratio(again, paying)},
        "pickup_wait_s": {"orders": waits["orders"] if waits else 0,
                          "p50": round(waits["p50"], 1) if waits else None,
                          "p90": round(waits["p90"], 1) if waits else None},
    }


def _series(hours: list, since: datetime, until: datetime, granularity: str,
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
    for row in hours:
        bucket = buckets.get(row["hour"][:width])
        if bucket is not None:
            bucket[0] += row["gmv_fen"]
            bucket[1] += row["paid_orders"]
    return [{"at": at, "gmv_fen": gmv, "paid_orders": n} for at, (gmv, n) in buckets.items()]


def _heatmap(hours: list) -> dict:
    """Paid orders by weekday (Monday first) and local hour."""
    counts = [[0] * 24 for _ in WEEKDAYS]
    for row in hours:
        day = datetime.strptime(row["hour"][:10], "%Y-%m-%d")
        counts[day.weekday()][int(row["hour"][11:13])] += row["paid_orders"]
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
