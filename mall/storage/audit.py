"""The audit log: every merchant and operator action, written in the same transaction as
the change it records, so the log can never miss or invent one."""

from __future__ import annotations

import json
from sqlite3 import Row

from .database import Connection


async def record(conn: Connection, *, at: str, actor_id: int | None, actor_role: str,
                 action: str, store_id: int | None, target_type: str, target_id: object,
                 detail: dict | None = None) -> None:
    await conn.execute(
        "INSERT INTO audit_log (at, actor_id, actor_role, action, store_id, target_type,"
        " target_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (at, actor_id, actor_role, action, store_id, target_type, str(target_id),
         json.dumps(detail or {}, ensure_ascii=False, sort_keys=True)))


async def for_store(conn: Connection, store_id: int, before_id: int, limit: int) -> list[Row]:
    return list(await conn.execute_fetchall(
        "SELECT id, at, actor_id, actor_role, action, store_id, target_type, target_id, detail"
        " FROM audit_log WHERE store_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        (store_id, before_id, limit)))
