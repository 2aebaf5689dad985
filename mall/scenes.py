"""The home screen's scenes (mall/data/scenes.toml): when each holds on the mall clock,
what it recommends, and how it says why; read once at start and checked then, so a bad file
stops the mall naming the scene and field."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from string import Formatter
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config_files import load_toml
from .opening_hours import is_open
from .schemas import Clock as HHMM
from .schemas import Scene as SceneKey
from .schemas import Tag

SHIPPED = Path(__file__).with_name("data") / "scenes.toml"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")   # datetime.weekday() order
PLACEHOLDERS = {"time", "distance", "store", "circle", "product"}


class ScenesError(ValueError):
    """A scenes file that cannot be used, naming the scene and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Template = Annotated[str, Field(min_length=1, max_length=120)]


class Scene(_Strict):
    key: SceneKey
    title: Annotated[str, Field(min_length=1, max_length=20)]
    days: list[Literal[DAYS]] | None = None   # type: ignore[valid-type]
    starts: HHMM | None = Field(None, alias="from")
    until: HHMM | None = None
    product_scenes: list[SceneKey] = []
    product_tags: list[Tag] = []
    radius_m: Annotated[int, Field(ge=100, le=50_000)]
    per_store: Annotated[int, Field(ge=1, le=10)] = 2
    limit: Annotated[int, Field(ge=1, le=50)] = 10
    reason: Template
    reason_far: Template
    reason_school: Template | None = None

    @model_validator(mode="after")
    def _whole(self) -> Scene:
        given = [self.days is not None, self.starts is not None, self.until is not None]
        if any(given) and not all(given):
            raise ValueError("days, from and until go together (none: every other moment)")
        for template in (self.reason, self.reason_far, self.reason_school):
            unknown = {name for _, name, _, _ in Formatter().parse(template or "")
                       if name is not None} - PLACEHOLDERS
            if unknown:
                raise ValueError(f"{template!r}: unknown placeholders {sorted(unknown)}")
        return self

    @property
    def catch_all(self) -> bool:
        return self.days is None

    def holds(self, moment: datetime) -> bool:
        if self.days is None or self.starts is None or self.until is None:
            return True
        return DAYS[moment.weekday()] in self.days and is_open(self.starts, self.until, moment)


class Scenes(_Strict):
    school_words: list[Annotated[str, Field(min_length=1)]] = []
    scene: Annotated[list[Scene], Field(min_length=1)]

    @model_validator(mode="after")
    def _ends_with_a_catch_all(self) -> Scenes:
        keys = [s.key for s in self.scene]
        if len(set(keys)) != len(keys):
            raise ValueError("two scenes share a key")
        if [s.catch_all for s in self.scene] != [False] * (len(keys) - 1) + [True]:
            raise ValueError("the last scene, and only it, has no days, from and until")
        return self

    def at(self, moment: datetime) -> Scene:
        return next(scene for scene in self.scene if scene.holds(moment))

    def near_school(self, business_circle: str | None) -> bool:
        return bool(business_circle) and any(w in business_circle for w in self.school_words)


def load_scenes(path: Path = SHIPPED) -> Scenes:
    return load_toml(path, Scenes, ScenesError)
