"""The city's members before its first day (会员): who joined, what they had spent, and the
points they kept, as each one's opening points-ledger row.

Drawn from the city's seed in customer order, so the same city always has the same members;
their level follows the mall's own membership file, as the mall would have set it."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

from mall.member_levels import SHIPPED, load_membership

from . import tables
from .city import City


@dataclass(frozen=True)
class Opening:
    user_id: int
    level: str
    points: int
    spent_fen: int


def openings(city: City) -> Iterator[Opening]:
    rules = load_membership(SHIPPED)
    personas = {p.key: p for p in tables.personas()}
    by_index = [personas[key] for key in city.persona_keys]
    rng = random.Random(f"{city.seed}:members")
    for index, persona_index in enumerate(city.customers.persona):
        persona = by_index[persona_index]
        if rng.random() >= persona.member_share:
            continue
        low, high = persona.member_spent_yuan
        spent_fen = round(math.exp(rng.uniform(math.log(low), math.log(high)))) * 100
        level = rules.level_for(spent_fen).key
        kept = rng.uniform(0.1, 0.9)  # the rest went on earlier orders
        points = int(rules.earned(level, spent_fen) * kept)
        yield Opening(index + 1, level, points, spent_fen)


def table_rows(city: City, stamp: str) -> dict[str, tuple[int, list[tuple]]]:
    """Rows of `members` and `points_ledger` for the loader."""
    found = list(openings(city))
    return {
        "members": (len(found), [(o.user_id, o.level, o.points, o.spent_fen, stamp, stamp)
                                 for o in found]),
        "points_ledger": (len(found), [(number, o.user_id, None, "opening", o.points,
                                        o.spent_fen, o.points, stamp)
                                       for number, o in enumerate(found, start=1)]),
    }
