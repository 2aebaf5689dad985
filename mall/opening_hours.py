"""Opening hours as local `HH:MM` pairs.  A closing time at or before the opening time means
the store closes after midnight (a 夜宵 stall open 18:00-03:00), and 00:00-24:00 is all day."""

from __future__ import annotations

from datetime import datetime


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def is_open(opens_at: str, closes_at: str, moment: datetime) -> bool:
    now = moment.hour * 60 + moment.minute
    start, end = _minutes(opens_at), _minutes(closes_at)
    if start < end:
        return start <= now < end
    return now >= start or now < end  # crosses midnight (or start == end: open all day)
