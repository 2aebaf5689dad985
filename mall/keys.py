"""The server's keys, made on first start and kept in the database's settings table, so
the server, `xingcheng token` and the city loader all sign and seal with the same ones.  The
payment keys are not here: they belong to the merchant account with the payer (a keyring,
`MallConfig.payer_keys`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .storage import settings
from .storage.database import Connection


@dataclass(frozen=True)
class Keys:
    token_secret: str         # HMAC key of session tokens
    vault_key: str            # AES-256-GCM key for personal data (hex)


async def load(conn: Connection) -> Keys:
    return Keys(
        token_secret=await settings.get_or_create(conn, "token_secret",
                                                  lambda: secrets.token_hex(32)),
        vault_key=await settings.get_or_create(conn, "vault_key", lambda: secrets.token_hex(32)),
    )
