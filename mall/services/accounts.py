"""Login, roles and addresses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

from shared.clock import Clock
from shared.masking import mask_address, mask_name, mask_phone

from ..auth import Principal, TokenSigner
from ..errors import BadRequest, Forbidden, NotFound, Unauthorized
from ..privacy import Vault
from ..schemas import AddressIn
from ..storage import Database, settings, users
from ..storage.personal_data import ERASURES
from .write_once import WriteOnce

_SANDBOX_CODE = re.compile(r"^sandbox:([A-Za-z0-9_\-]{1,64})$")
# A login records activity only when the last record is older than this: retention is
# counted in days, and a login that only reads stays off the single writer.
ACTIVITY_GRAIN = timedelta(days=1)


@dataclass
class Accounts:
    db: Database
    clock: Clock
    signer: TokenSigner
    vault: Vault
    token_ttl_seconds: int
    facts: WriteOnce
    # Deleted or anonymized accounts, whose tokens still verify but must not be honoured:
    # kept in memory so the check costs no database trip per request.
    deleted: set[int] = field(default_factory=set)
    _erasures_seen: str | None = None

    async def wx_login(self, code: str) -> dict:
        """Imitates code2Session: the sandbox code `sandbox:<openid>` names its openid."""
        match = _SANDBOX_CODE.match(code)
        if match is None:
            # WeChat answers errcode 40029 for a code it does not know.
            raise Unauthorized("invalid_code", "login code is invalid (errcode 40029)", "code")
        openid = match.group(1)
        user = await users.by_openid(self.db.reader(), openid)
        now = self.clock.now()
        if user is None or (user["last_active_at"] or "") < self.clock.stamp(now - ACTIVITY_GRAIN):
            stamp = self.clock.stamp(now)
            arrived = await self.db.statement(lambda conn: users.arrive(conn, openid, stamp))
            if user is None:   # a new customer: no store's staff yet
                return self._session(arrived["id"], arrived["role"], [])
        store_ids = [int(s) for s in user["store_ids"].split(",")] if user["store_ids"] else []
        return self._session(user["id"], user["role"], store_ids)

    def require_live(self, principal: Principal) -> None:
        if principal.user_id in self.deleted:
            raise Unauthorized("account_deleted", "this account was deleted; log in again",
                               "Authorization")

    async def refresh_deleted(self) -> None:
        """Reload the deleted accounts when a deletion or purge (possibly by another
        process, `xingcheng privacy purge`) has bumped the erasure counter."""
        conn = self.db.reader()
        seen = await settings.get(conn, ERASURES)
        if seen != self._erasures_seen:
            self.deleted = set(await users.deleted_ids(conn))
            self._erasures_seen = seen

    async def session_for(self, user_id: int, role: str) -> dict:
        return self._session(user_id, role,
                             await users.staff_store_ids(self.db.reader(), user_id))

    def _session(self, user_id: int, role: str, store_ids: list[int]) -> dict:
        expires_at = int(self.clock.wall()) + self.token_ttl_seconds
        roles = [role] + (["merchant"] if store_ids else [])
        return {"token": self.signer.issue(user_id, role, expires_at), "user_id": user_id,
                "expires_at": expires_at, "roles": roles, "store_ids": store_ids}

    async def operator_token(self, name: str) -> dict:
        stamp = self.clock.stamp()
        user = await self.db.transaction(
            lambda conn: users.ensure(conn, f"operator:{name}", "operator", stamp))
        return await self.session_for(user["id"], user["role"])

    async def require_store_access(self, principal: Principal, store_id: int) -> None:
        """Operators act on any store, staff on their own; unknown stores are 404."""
        staff = await self.facts.store_access(self.db.reader(), principal.user_id, store_id)
        if staff is None:
            raise NotFound("store", "store_id")
        if staff or principal.is_operator:
            return
        raise Forbidden("not_store_staff", "you are not staff of this store", "store_id")

    async def add_address(self, principal: Principal, data: AddressIn) -> dict:
        district = await self.facts.district_code(self.db.reader(), data.district)
        if district is None:
            raise BadRequest("unknown_district", "district is not one of Changsha's",
                             "district")
        masked = " ".join((mask_name(data.contact_name), mask_phone(data.phone),
                           mask_address(data.detail)))
        sealed = self.vault.seal({"name": data.contact_name, "phone": data.phone,
                                  "detail": data.detail})
        stamp = self.clock.stamp()
        return dict(await self.db.statement(lambda conn: users.insert_address(
            conn, principal.user_id, district, masked, sealed, data.lat, data.lng, stamp)))

    async def addresses(self, principal: Principal) -> list[dict]:
        return [dict(row) for row in await users.addresses(self.db.reader(), principal.user_id)]

    async def address(self, principal: Principal, address_id: int) -> dict:
        row = await users.address(self.db.reader(), principal.user_id, address_id)
        if row is None:
            raise NotFound("address", "address_id")
        return dict(row)
