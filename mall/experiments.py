"""A/B experiments: the definitions file (`mall/data/experiments.toml`, or `serve
--experiments FILE`) and the rule that puts a customer in an arm.

The arm is a pure function of the experiment's key, its salt and the user id: the weighted
bucket of sha256("key:salt:user_id").  Nothing is written when a customer is assigned, on
purpose: every process on one database (a baseline and a canary, a mall restarted mid-run)
computes the same arm with no coordination, the single writer gets no extra write per
customer, and there is no table to keep in step with the file.  The price is that changing
an experiment's salt or weights moves customers between arms, which the file's comments
forbid while an experiment runs."""

from __future__ import annotations

import hashlib
from datetime import datetime
from itertools import accumulate
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .config_files import load_toml

SHIPPED = Path(__file__).with_name("data") / "experiments.toml"
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class ExperimentsError(ValueError):
    """A definitions file that cannot be used, naming the experiment and field."""


class _Strict(BaseModel):
    # A typo (`weigth = 2`) must stop the mall, not leave an arm silently at a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Arm(_Strict):
    name: Identifier
    weight: Annotated[int, Field(gt=0, le=1_000_000, strict=True)]


class Experiment(_Strict):
    key: Identifier
    salt: Annotated[str, Field(min_length=1, max_length=100)]
    arms: list[Arm]
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @field_validator("arms")
    @classmethod
    def _two_distinct_arms(cls, arms: list[Arm]) -> list[Arm]:
        if len(arms) < 2:
            raise ValueError("an experiment needs two arms at least: the control (first) "
                             "and one to compare with it")
        names = [arm.name for arm in arms]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"arm names must differ; repeated: {', '.join(doubled)}")
        return arms

    @model_validator(mode="after")
    def _window(self) -> Experiment:
        for moment in (self.starts_at, self.ends_at):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("starts_at and ends_at need a UTC offset, e.g. +08:00")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must come after starts_at")
        return self

    @property
    def control(self) -> str:
        return self.arms[0].name

    def running(self, now: datetime) -> bool:
        return ((self.starts_at is None or self.starts_at <= now)
                and (self.ends_at is None or now < self.ends_at))

    def arm_for(self, user_id: int) -> str:
        """The weighted bucket of a 64-bit hash: arm i takes weight_i / total of the users."""
        digest = hashlib.sha256(f"{self.key}:{self.salt}:{user_id}".encode()).digest()
        point = (int.from_bytes(digest[:8], "big") * sum(a.weight for a in self.arms)) >> 64
        bounds = accumulate(arm.weight for arm in self.arms)
        return next(arm.name for arm, bound in zip(self.arms, bounds, strict=True)
                    if point < bound)


class ExperimentFile(_Strict):
    experiment: list[Experiment] = []

    @model_validator(mode="after")
    def _keys_once(self) -> ExperimentFile:
        keys = [e.key for e in self.experiment]
        doubled = sorted({key for key in keys if keys.count(key) > 1})
        if doubled:
            raise ValueError(f"experiment keys must differ; repeated: {', '.join(doubled)}")
        return self

    def by_key(self) -> dict[str, Experiment]:
        return {e.key: e for e in self.experiment}


def load_experiments(path: Path = SHIPPED) -> ExperimentFile:
    return load_toml(path, ExperimentFile, ExperimentsError)
