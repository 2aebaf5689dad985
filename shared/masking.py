"""Masking of personal data for every display, log line and report: 138****1234, 张*, the
street only.  The mall masks what it answers and logs; the simulator, the load client and
the reports mask what they print; all with these same rules.

Logs pass through `MaskingFilter`, so even a careless log call cannot write a full phone
number."""

from __future__ import annotations

import logging
import re

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
