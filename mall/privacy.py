"""Personal data: masked for every display and log line, encrypted where it must be kept.

Logs pass through `MaskingFilter`, so even a careless log call cannot write a full phone
number; responses only ever carry the masked forms stored beside the ciphertext."""

from __future__ import annotations

import json
import logging
import os
import re

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The "no digit before" check sits after the leading 1 (as "not four digits in a row"), so the
# pattern starts with a literal and re skips ahead to each "1" instead of trying every position.
_PHONE = re.compile(r"(1[3-9]\d)(?<!\d{4})(\d{4})(\d{4})(?!\d)")


def mask_phone(phone: str) -> str:
    """138****1234; anything not shaped like a phone keeps only its last four digits."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 11:
        return f"{digits[:3]}****{digits[-4:]}"
    return "*" * max(len(digits) - 4, 0) + digits[-4:]


def mask_name(name: str) -> str:
    """张* / 欧阳** : the family name (first character) only."""
    name = name.strip()
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""


def mask_address(detail: str) -> str:
    """Keep the street level (first six characters), hide the rest."""
    detail = detail.strip()
    return detail[:6] + "***" if len(detail) > 6 else detail[:2] + "***"


def mask_text(text: str) -> str:
    """Mask every phone number found inside free text.  Most text (every access log path) has
    none, and a search costs a fraction of a substitution, so the search comes first."""
    return _PHONE.sub(r"\1****\3", text) if _PHONE.search(text) else text


class MaskingFilter(logging.Filter):
    """Rewrites records so no full phone number reaches a log handler.

    The traceback is formatted and masked here too: a formatter writes `exc_text` after the
    filters have run, so an exception message quoting a phone would otherwise pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_text(record.stack_info)
        return True


def mask_log_handlers(logger: logging.Logger | None = None) -> None:
    """Put the mask on every handler of `logger` (the root by default): filters on a logger
    do not see records propagated from its children, filters on handlers see them all."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(MaskingFilter())


class Vault:
    """AES-256-GCM for personal data at rest; the key lives in the settings table."""

    def __init__(self, key_hex: str) -> None:
        self._aead = AESGCM(bytes.fromhex(key_hex))

    def seal(self, data: dict) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, json.dumps(data).encode(), b"xingcheng")

    def open(self, blob: bytes) -> dict:
        return json.loads(self._aead.decrypt(blob[:12], blob[12:], b"xingcheng"))
