"""The membership rules (mall/data/membership.toml): levels by spending, points earned per
yuan paid at each level, and what a point is worth.  Read once at start and checked then, so
a bad file stops the mall with a message naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config_files import load_toml

SHIPPED = Path(__file__).with_name("data") / "membership.toml"


class MembershipRulesError(ValueError):
    """A membership file that cannot be used, naming the level and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Level(_Strict):
    key: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    name: Annotated[str, Field(min_length=1, max_length=20)]
    from_spent_yuan: Annotated[int, Field(ge=0, le=10**7)]
    points_per_10_yuan: Annotated[int, Field(ge=0, le=10_000)]


class MembershipRules(_Strict):
    fen_per_point: Annotated[int, Field(ge=1, le=100)] = 1
    max_points_percent: Annotated[int, Field(ge=1, le=100)] = 50
    level: Annotated[list[Level], Field(min_length=1)]

    @model_validator(mode="after")
    def _ordered(self) -> MembershipRules:
        if self.level[0].from_spent_yuan != 0:
            raise ValueError("the first level must start at from_spent_yuan = 0")
        keys = [level.key for level in self.level]
        if len(set(keys)) != len(keys):
            raise ValueError("two levels share a key")
        spends = [level.from_spent_yuan for level in self.level]
        if spends != sorted(set(spends)):
            raise ValueError("levels must be listed by from_spent_yuan, each above the last")
        return self

    def rank(self, key: str) -> int | None:
        """The level's place from the lowest (0), None for a key no level has."""
        return next((i for i, level in enumerate(self.level) if level.key == key), None)

    def by_key(self, key: str) -> Level:
        return self.level[self.rank(key) or 0]

    def level_for(self, spent_fen: int) -> Level:
        return [lv for lv in self.level if lv.from_spent_yuan * 100 <= spent_fen][-1]

    def next_level(self, spent_fen: int) -> Level | None:
        return next((lv for lv in self.level if lv.from_spent_yuan * 100 > spent_fen), None)

    def earned(self, level_key: str, paid_fen: int) -> int:
        """Points an order paid at this level earns: whole points, rounded down."""
        return paid_fen * self.by_key(level_key).points_per_10_yuan // 1000

    def may_pay(self, level_key: str, min_level: str) -> bool:
        """Whether a member at `level_key` gets a price offered from `min_level` up."""
        have, need = self.rank(level_key), self.rank(min_level)
        return have is not None and need is not None and have >= need


def load_membership(path: Path) -> MembershipRules:
    return load_toml(path, MembershipRules, MembershipRulesError)
