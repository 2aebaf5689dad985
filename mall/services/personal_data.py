"""A customer's rights over their personal data (PIPL arts. 44-47: know, copy, delete) and
the end of retention for inactive accounts.  See docs/privacy.md.

Deletion anonymizes rather than removes: the user row stays, emptied, so orders keep a valid
owner and the merchants' accounting (order counts, GMV) does not move."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shared.clock import Clock

from ..auth import Principal
from ..errors import Conflict, Unauthorized
from ..privacy import Vault
from ..storage import Database, membership, orders, payments, personal_data, users
from ..storage.database import Connection
from . import audit_trail
from .accounts import Accounts
from .orders import present


@dataclass
class PersonalData:
    db: Database
    clock: Clock
    vault: Vault
    accounts: Accounts

    async def export(self, principal: Principal) -> dict:
        """Everything kept about the caller, decrypted for them alone.  Read in the writer's
        transaction so the copy is one consistent moment (a rare request; a few reads)."""
        stamp = self.clock.stamp()

        async def read(conn: Connection) -> dict:
            user = await users.profile(conn, principal.user_id)
            if user is None:
                raise Unauthorized("account_deleted", "this account does not exist",
                                   "Authorization")
            lines: dict[int, list] = {}
            for line in await orders.lines_for_user(conn, principal.user_id):
                lines.setdefault(line["order_id"], []).append(line)
            return {
                "generated_at": stamp,
                "profile": {
                    "user_id": user["id"], "openid": user["openid"], "role": user["role"],
                    "nickname": user["nickname"],
                    "phone": self._open(user["phone_enc"]).get("phone"),
                    "created_at": user["created_at"], "last_active_at": user["last_active_at"],
                    "store_ids": await users.staff_store_ids(conn, principal.user_id)},
                "addresses": [
                    {"id": row["id"], "district": row["district"],
                     **{key: self._open(row["contact_enc"]).get(key)
                        for key in ("contact_name", "phone", "detail")},
                     "lat": row["lat"], "lng": row["lng"], "created_at": row["created_at"]}
                    for row in await users.sealed_addresses(conn, principal.user_id)],
                "orders": [present(order, lines.get(order["id"], []), for_customer=True)
                           for order in await orders.all_for_user(conn, principal.user_id)],
                "payments": [dict(row) for row in
                             await payments.for_user(conn, principal.user_id)],
                "points_ledger": [dict(row) for row in await membership.ledger(
                    conn, principal.user_id, 2**62, 100_000)],
            }

        return await self.db.transaction(read, long=True)

    def _open(self, blob: bytes | None) -> dict:
        """The sealed contact as its owner gave it; {} where nothing (or nothing any more,
        after anonymization) is sealed.  Addresses were sealed with the key `name`."""
        if not blob:
            return {}
        data = self.vault.open(blob)
        if "name" in data:
            data["contact_name"] = data.pop("name")
        return data

    async def erase(self, principal: Principal) -> dict:
        """Anonymize the caller's account (idempotent: a repeat answers the same)."""
        stamp = self.clock.stamp()
        user_id = principal.user_id

        async def erase(conn: Connection) -> dict:
            await conn.lock("customer", user_id)   # no order of theirs starts meanwhile
            user = await users.profile(conn, user_id)
            if user is None:
                raise Unauthorized("account_deleted", "this account does not exist",
                                   "Authorization")
            deleted_at = user["deleted_at"]
            if deleted_at is None:
                if user["role"] != "customer" or await users.staff_store_ids(conn, user_id):
                    raise Conflict("staff_account", "store staff and operators cannot delete "
                                   "their account here; an operator unbinds them first")
                live = await orders.live_for_user(conn, user_id)
                if live:
                    raise Conflict("live_orders", f"{len(live)} order(s) still under way "
                                   f"({', '.join(sorted({o['status'] for o in live}))}); "
                                   "cancel them or wait until they are completed",
                                   extra={"order_ids": [o["id"] for o in live]})
                await personal_data.mark_user(conn, user_id)
                counts = await personal_data.anonymize_marked(conn, stamp)
                await audit_trail.record(conn, principal, stamp, "account.delete",
                                         store_id=None, target_type="user",
                                         target_id=user_id, detail=counts, role="customer")
                deleted_at = stamp
            return {"user_id": user_id, "deleted_at": deleted_at,
                    "orders_kept": await orders.count_for_user(conn, user_id)}

        result = await self.db.transaction(erase, long=True)
        self.accounts.deleted.add(user_id)
        await self.db.checkpoint(truncate=True)   # the old page images leave the WAL file
        return result

    async def purge(self, older_than: timedelta, operator: str, dry_run: bool) -> dict:
        """Anonymize customers inactive for longer than `older_than` on the mall clock, as
        the named operator; a dry run only counts them and writes nothing."""
        now = self.clock.now()
        cutoff = self.clock.stamp(now - older_than)
        if dry_run:
            count = await personal_data.count_inactive(self.db.scan_reader(), cutoff)
            return {"accounts": count, "cutoff": cutoff, "dry_run": True}
        stamp = self.clock.stamp(now)

        async def purge(conn: Connection) -> dict:
            actor = await users.ensure(conn, f"operator:{operator}", "operator", stamp)
            await personal_data.mark_inactive(conn, cutoff)
            counts = await personal_data.anonymize_marked(conn, stamp)
            detail = {"count": counts["accounts"], "cutoff": cutoff, **counts}
            await audit_trail.record(conn, Principal(actor["id"], actor["role"]), stamp,
                                     "privacy.purge", store_id=None, target_type="users",
                                     target_id=f"inactive_before:{cutoff}", detail=detail)
            return {**counts, "cutoff": cutoff, "dry_run": False}

        result = await self.db.transaction(purge, long=True)
        await self.db.checkpoint(truncate=True)   # the old page images leave the WAL file
        return result
