"""The server's keys, made on first start and kept in the database's settings table, so
the server, `xingcheng token` and the city loader all sign and seal with the same ones."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from .storage import settings
from .storage.database import Connection
from .wechatpay import new_private_key_pem


@dataclass(frozen=True)
class Keys:
    token_secret: str         # HMAC key of session tokens
    vault_key: str            # AES-256-GCM key for personal data (hex)
    apiv3_key: bytes          # WeChat Pay APIv3 key: AES-256-GCM of notification resources
    platform_private_key: str  # the sandbox payer's RSA key (PEM); the mall verifies with it
    platform_serial: str


async def load(conn: Connection) -> Keys:
    return Keys(
        token_secret=await settings.get_or_create(conn, "token_secret",
                                                  lambda: secrets.token_hex(32)),
        vault_key=await settings.get_or_create(conn, "vault_key", lambda: secrets.token_hex(32)),
        apiv3_key=(await settings.get_or_create(conn, "apiv3_key",
                                                lambda: secrets.token_hex(16))).encode(),
        platform_private_key=await settings.get_or_create(conn, "platform_private_key",
                                                          new_private_key_pem),
        platform_serial=await settings.get_or_create(conn, "platform_serial",
                                                     lambda: secrets.token_hex(20).upper()),
    )
