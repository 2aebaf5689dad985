"""Who did what: the actor fields every audit entry shares, taken from the principal."""

from __future__ import annotations

from ..auth import Principal
from ..storage import audit
from ..storage.database import Connection


async def record(conn: Connection, principal: Principal, at: str, action: str, *,
                 store_id: int | None, target_type: str, target_id: object,
                 detail: dict | None = None, role: str | None = None) -> None:
    """`role` names the capacity when the principal acts as neither merchant nor operator
    (a customer deleting their own account)."""
    role = role or ("operator" if principal.is_operator else "merchant")
    await audit.record(conn, at=at, actor_id=principal.user_id, actor_role=role, action=action,
                       store_id=store_id, target_type=target_type, target_id=target_id,
                       detail=detail)
