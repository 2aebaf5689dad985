"""Anonymizing accounts: on a customer's request, or at the end of the retention period.

Both go through one path: the accounts to anonymize are listed in a temporary table of the
writer connection (one id, or every inactive customer), then a few set-wise statements clear
them, so a purge of thousands costs the same handful of statements as one deletion.  Call
inside one `Database.transaction`: all of it lands, or none."""

from __future__ import annotations

from .database import Connection
from .inventory import LIVE
from .settings import increment

ERASURES = "erasures"   # settings counter: a running mall reloads its deleted accounts on change

_MARKED = "SELECT id FROM temp.anonymize_ids"
_INACTIVE = (
    "SELECT u.id FROM users u WHERE u.role = 'customer' AND u.deleted_at IS NULL"
    " AND coalesce(u.last_active_at, u.created_at) < ?"
    " AND NOT EXISTS (SELECT 1 FROM store_staff s WHERE s.user_id = u.id)"
    " AND NOT EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id"
    f" AND o.status IN ({','.join(repr(state) for state in LIVE)}))"
)


async def _new_marks(conn: Connection) -> None:
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS anonymize_ids (id INTEGER PRIMARY KEY)")
    await conn.execute("DELETE FROM temp.anonymize_ids")


async def mark_user(conn: Connection, user_id: int) -> None:
    await _new_marks(conn)
    await conn.execute("INSERT INTO temp.anonymize_ids (id) VALUES (?)", (user_id,))


async def mark_inactive(conn: Connection, cutoff: str) -> None:
    """Customers (not staff) last active before `cutoff` and with no order under way."""
    await _new_marks(conn)
    await conn.execute(f"INSERT INTO temp.anonymize_ids (id) {_INACTIVE}", (cutoff,))


async def count_inactive(conn: Connection, cutoff: str) -> int:
    rows = await conn.execute_fetchall(f"SELECT count(*) FROM ({_INACTIVE}) AS inactive", (cutoff,))
    return rows[0][0]


async def anonymize_marked(conn: Connection, now: str) -> dict[str, int]:
    """Clear the personal data of the marked accounts; orders and their totals stay.

    `secure_delete` makes SQLite zero the space the old values leave, so the ciphertexts and
    masked copies do not linger in the file's free space after the next checkpoint."""
    previous = (await conn.execute_fetchall("PRAGMA secure_delete"))[0][0]
    await conn.execute("PRAGMA secure_delete = ON")
    users = await conn.execute(
        "UPDATE users SET openid = 'deleted:' || id, nickname = NULL, phone_masked = NULL,"
        f" phone_enc = NULL, deleted_at = ? WHERE id IN ({_MARKED})", (now,))
    await conn.execute(f"DELETE FROM idempotency_keys WHERE user_id IN ({_MARKED})")
    # An address is used only by its owner's orders, so those are the ones to look in.
    removed = await conn.execute(
        f"DELETE FROM addresses WHERE user_id IN ({_MARKED}) AND id NOT IN (SELECT address_id"
        f" FROM orders WHERE user_id IN ({_MARKED}) AND address_id IS NOT NULL)")
    kept = await conn.execute(
        "UPDATE addresses SET contact_masked = '', contact_enc = ?, lat = NULL, lng = NULL"
        f" WHERE user_id IN ({_MARKED})", (b"",))
    counts = {"accounts": users.rowcount, "addresses_removed": removed.rowcount,
              "addresses_anonymized": kept.rowcount}
    await conn.execute("DELETE FROM temp.anonymize_ids")
    if counts["accounts"]:
        await increment(conn, ERASURES)
    await conn.execute(f"PRAGMA secure_delete = {int(previous)}")
    return counts
