"""Scenario files (`scenarios/*.toml`): what to simulate, how fast, on which city, with
which load.  Validated on load, with errors that name the field.

This is the load client's reading: the `[thresholds]` and `[gate]` tables that decide the
verdict are kept as written and parsed only by the run that judges
(`orchestration.judged_scenario`), so a load worker needs neither the gate's statistics nor
anything of the mall."""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from simulator import tables

SHIPPED = Path(__file__).resolve().parent.parent / "scenarios"


class ScenarioError(Exception):
    """A scenario that cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Window(_Strict):
    start: datetime
    end: datetime
    day: Literal["weekday", "weekend"]
    speed: Annotated[float, Field(gt=0, le=3600)]

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset, e.g. +08:00")
        if self.end <= self.start:
            raise ValueError("end must come after start")
        return self

    @property
    def real_seconds(self) -> float:
        return (self.end - self.start).total_seconds() / self.speed


class CityChoice(_Strict):
    preset: str = "small"
    seed: int = 7
    daily_orders: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _known(self) -> CityChoice:
        if self.preset not in tables.presets():
            raise ValueError(f"preset must be one of {', '.join(sorted(tables.presets()))}")
        return self


Share = Annotated[float, Field(ge=0, lt=1)]


class Events(_Strict):
    flash_sale: datetime | None = None
    campus_promo: tuple[str, str] | None = None


class Load(_Strict):
    staff: Annotated[int, Field(ge=1, le=200)] = 4
    max_sessions: Annotated[int, Field(ge=1, le=20_000)] = 2000
    drain_seconds: Annotated[float, Field(ge=0, le=600)] = 20
    late_after_seconds: Annotated[float, Field(gt=0, le=60)] = 1.0


class ScenarioFile(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")]
    description: str = ""
    window: Window
    city: CityChoice = CityChoice()
    mix: dict[str, Annotated[float, Field(ge=0, le=100)]] = {}
    events: Events = Events()
    load: Load = Load()
    thresholds: dict[str, list[str]] = {}
    gate: dict = {}   # the release gate's settings: `orchestration.judged_scenario` reads them
    # How customers respond to A/B experiments' arms: experiment -> arm -> the share of the
    # arm's customers who leave before ordering.  None by default: arms change nothing.
    experiment_response: dict[str, dict[str, Share]] = {}

    @model_validator(mode="after")
    def _personas(self) -> ScenarioFile:
        known = {p.key for p in tables.personas()}
        unknown = set(self.mix) - known
        if unknown:
            raise ValueError(f"mix names unknown personas {sorted(unknown)}; "
                             f"known: {sorted(known)}")
        return self


class Scenario:
    def __init__(self, path: Path, spec: ScenarioFile, text: str) -> None:
        self.path = path
        self.spec = spec
        self.text = text   # as written (thresholds are judged against its lines)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def preset(self):
        return tables.presets()[self.spec.city.preset]

    @property
    def daily_orders(self) -> int:
        return self.spec.city.daily_orders or self.preset.daily_orders


def resolve(name_or_path: str) -> Path:
    """A shipped scenario's name (`smoke`) or the path of a scenario file."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ScenarioError(f"{name_or_path}: no such scenario file")
        return path
    shipped = SHIPPED / f"{name_or_path}.toml"
    if not shipped.is_file():
        names = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.toml")))
        raise ScenarioError(f"no scenario named {name_or_path!r}; shipped: {names}")
    return shipped


def load_scenario(name_or_path: str) -> Scenario:
    path = resolve(name_or_path)
    return Scenario(path, *_read(path))


def invalid(path: Path, exc: ValidationError, table: str = "") -> ScenarioError:
    """The first error of a scenario's validation (or of one of its `table`s), naming its
    field."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in ([table] if table else []) + list(first["loc"]))
    where = where or "(top level)"
    return ScenarioError(f"{path}: {where}: {first['msg']}")


def _read(path: Path) -> tuple[ScenarioFile, str]:
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return ScenarioFile.model_validate(raw), text
    except ValidationError as exc:
        raise invalid(path, exc) from exc


def reseeded(name_or_path: str, offset: int, folder: Path) -> str:
    """A copy of the scenario in `folder` with its city seed moved on by `offset`: repeated
    trials differ in their city, customers and journeys, not only in the machine's timing."""
    path = resolve(name_or_path)
    text = path.read_text(encoding="utf-8")
    seed = load_scenario(str(path)).spec.city.seed + offset
    city = text.index("[city]")
    line = re.compile(r"^seed\s*=\s*\d+\s*$", re.MULTILINE)
    match = line.search(text, city)
    text = (text[:match.start()] + f"seed = {seed}" + text[match.end():] if match
            else text[:city] + f"[city]\nseed = {seed}" + text[city + len("[city]"):])
    copy = folder / f"{path.stem}-seed{seed}.toml"
    copy.write_text(text, encoding="utf-8")
    return str(copy)
