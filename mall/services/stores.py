"""Onboarding stores and finding them."""

from __future__ import annotations

from dataclasses import dataclass
from sqlite3 import Row

from shared.clock import Clock

from ..auth import Principal
from ..errors import BadRequest, NotFound
from ..geo import bounding_box, distance_km
from ..opening_hours import is_open
from ..schemas import PageQuery, PickupPointIn, StaffIn, StoreIn, StoresQuery
from ..storage import Database, audit, stores, users
from ..storage.database import Connection
from ..validation import decode_cursor, encode_cursor, point
from . import audit_trail


async def known_district(conn: Connection, name_or_code: str) -> str:
    """The code of one of Changsha's districts, named by its name or its code."""
    code = await stores.district_code(conn, name_or_code)
    if code is None:
        raise BadRequest("unknown_district", "district is not one of Changsha's", "district")
    return code


async def stores_near(conn: Connection, at: tuple[float, float], radius_km: float,
                      district_code: str | None) -> list[tuple[float, Row]]:
    """(km, store) within `radius_km` of a point, nearest first (then by id, so that equal
    distances keep one order across pages): an index-cheap box, then the exact distance."""
    found = []
    for row in await stores.stores_in_box(conn, *bounding_box(*at, radius_km), district_code):
        km = distance_km(*at, row["lat"], row["lng"])
        if km <= radius_km:
            found.append((km, row))
    found.sort(key=lambda item: (item[0], item[1]["id"]))
    return found


@dataclass
class Stores:
    db: Database
    clock: Clock

    async def create(self, principal: Principal, data: StoreIn) -> dict:
        conn = self.db.reader()
        district = await known_district(conn, data.district)
        if not await stores.kind_exists(conn, data.kind):
            kinds = ", ".join(await stores.kinds(conn))
            raise BadRequest("unknown_kind", f"kind must be one of: {kinds}", "kind")
        now = self.clock.stamp()

        async def create(conn) -> int:
            store_id = await stores.insert_store(
                conn, name=data.name, kind=data.kind, district_code=district,
                business_circle=data.business_circle, lat=data.lat, lng=data.lng,
                opens_at=data.opens_at, closes_at=data.closes_at, now=now)
            counter_id = await stores.insert_pickup_point(
                conn, store_id=store_id, kind="counter", name=f"{data.name} 门店柜台",
                lat=data.lat, lng=data.lng, now=now)
            await audit_trail.record(conn, principal, now, "store.create", store_id=store_id,
                                     target_type="store", target_id=store_id,
                                     detail={"name": data.name, "district": district})
            return {"store_id": store_id, "pickup_point_id": counter_id}

        return await self.db.transaction(create)

    async def add_staff(self, principal: Principal, store_id: int, data: StaffIn) -> dict:
        await self._existing(store_id)
        now = self.clock.stamp()

        async def bind(conn) -> dict:
            user = await users.ensure(conn, data.openid, "customer", now)
            added = await users.bind_staff(conn, user["id"], store_id, now)
            if added:
                await audit_trail.record(conn, principal, now, "store.staff.add",
                                         store_id=store_id, target_type="user",
                                         target_id=user["id"])
            return {"store_id": store_id, "user_id": user["id"], "added": added}

        return await self.db.transaction(bind)

    async def add_pickup_point(self, principal: Principal, store_id: int,
                               data: PickupPointIn) -> dict:
        await self._existing(store_id)
        now = self.clock.stamp()

        async def add(conn) -> dict:
            point_id = await stores.insert_pickup_point(
                conn, store_id=store_id, kind=data.kind, name=data.name, lat=data.lat,
                lng=data.lng, now=now)
            await audit_trail.record(conn, principal, now, "store.pickup_point.add",
                                     store_id=store_id, target_type="pickup_point",
                                     target_id=point_id, detail={"kind": data.kind})
            return {"pickup_point_id": point_id, "store_id": store_id}

        return await self.db.transaction(add)

    async def _existing(self, store_id: int):
        row = await stores.store(self.db.reader(), store_id)
        if row is None:
            raise NotFound("store", "store_id")
        return row

    def _present(self, row, distance: float | None) -> dict:
        store = dict(row)
        store["open_now"] = is_open(row["opens_at"], row["closes_at"], self.clock.now())
        store["distance_km"] = None if distance is None else round(distance, 3)
        return store

    async def detail(self, store_id: int) -> dict:
        row = await self._existing(store_id)
        store = self._present(row, None)
        store["pickup_points"] = [dict(p) for p in
                                  await stores.pickup_points(self.db.reader(), store_id)]
        return store

    async def search(self, query: StoresQuery) -> dict:
        """Stores near a point (by distance) or in a district (by id), cursor-paginated."""
        at = point(query.lat, query.lng)
        conn = self.db.reader()
        district = None
        if query.district is not None:
            district = await known_district(conn, query.district)
        if at is not None:
            candidates = [self._present(row, km) for km, row in
                          await stores_near(conn, at, query.radius_km, district)]
        else:
            candidates = [self._present(row, None)
                          for row in await stores.stores_in_district(conn, district)]
        if query.open_now is not None:
            candidates = [s for s in candidates if s["open_now"] == query.open_now]
        offset = decode_cursor(query.cursor, 0)
        page = candidates[offset:offset + query.limit]
        more = offset + query.limit < len(candidates)
        return {"items": page,
                "next_cursor": encode_cursor(offset + query.limit) if more else None}

    async def audit_entries(self, store_id: int, query: PageQuery) -> dict:
        before = decode_cursor(query.cursor, 2**62)
        rows = await audit.for_store(self.db.reader(), store_id, before, query.limit)
        more = len(rows) == query.limit
        return {"items": [dict(row) for row in rows],
                "next_cursor": encode_cursor(rows[-1]["id"]) if more else None}
