"""Personal data the mall must keep, encrypted at rest; every display and log line shows
only its masked form (`shared.masking`), and responses only ever carry the masked forms
stored beside the ciphertext."""

from __future__ import annotations

import json
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class Vault:
    """AES-256-GCM for personal data at rest; the key lives in the settings table."""

    def __init__(self, key_hex: str) -> None:
        self._aead = AESGCM(bytes.fromhex(key_hex))

    def seal(self, data: dict) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, json.dumps(data).encode(), b"xingcheng")

    def open(self, blob: bytes) -> dict:
        return json.loads(self._aead.decrypt(blob[:12], blob[12:], b"xingcheng"))
