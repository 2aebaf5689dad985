"""Fault profiles for rehearsals: a mall started with `--faults FILE` behaves like a bad
build on purpose (slow routes, errors on a route, higher prices), so release managers can see
the gate catch it before a real one does.

Never active unless named; the start-up log warns about every fault, and `mall_build_info`
carries the profile's name.  Draws come from the profile's seed, so a rehearsal replays.  An
injected error refuses the request before its handler runs: nothing is half written."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ApiError

log = logging.getLogger("mall.faults")
Share = Annotated[float, Field(ge=0, le=1)]
Millis = Annotated[float, Field(ge=0, le=60_000)]


class FaultProfileError(ValueError):
    """A profile that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Lognormal(_Strict):
    median_ms: Millis
    sigma: Annotated[float, Field(ge=0, le=3)] = 0.5


class Uniform(_Strict):
    low_ms: Millis
    high_ms: Millis


class Latency(_Strict):
    """Added time on a route: fixed, or drawn from a distribution (fixed is added to it)."""

    route: str
    fixed_ms: Millis = 0
    lognormal: Lognormal | None = None
    uniform: Uniform | None = None
    exponential_mean_ms: Millis | None = None
    share: Share = 1.0

    def draw(self, rng: random.Random) -> float:
        ms = self.fixed_ms
        if self.lognormal is not None:
            ms += rng.lognormvariate(0, self.lognormal.sigma) * self.lognormal.median_ms
        if self.uniform is not None:
            ms += rng.uniform(self.uniform.low_ms, self.uniform.high_ms)
        if self.exponential_mean_ms:
            ms += rng.expovariate(1 / self.exponential_mean_ms)
        return ms / 1000


class Errors(_Strict):
    route: str
    rate: Share
    status: Annotated[int, Field(ge=500, le=599)] = 503


class Prices(_Strict):
    """A price change on all SKUs, listed SKUs, or a share of SKUs (by a stable hash)."""

    factor: Annotated[float, Field(gt=0, le=10)]
    skus: Literal["all"] | list[Annotated[int, Field(gt=0)]] = "all"
    share: Share = 1.0


class FaultProfile(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,60}$")]
    description: str = ""
    seed: int = 0
    latency: list[Latency] = []
    errors: list[Errors] = []
    prices: list[Prices] = []

    @model_validator(mode="after")
    def _routes_exist(self) -> FaultProfile:
        from .routes import ROUTES  # the route table names every route a fault may target

        known = {f"{r.method} {r.path}" for r in ROUTES}
        for kind in ("latency", "errors"):
            for index, fault in enumerate(getattr(self, kind)):
                if fault.route not in known:
                    raise ValueError(f"{kind}.{index}.route: {fault.route!r} is no route; "
                                     "write it as in mall/routes.py, e.g. "
                                     "'POST /api/v1/orders'")
        return self


def load_profile(path: Path) -> FaultProfile:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FaultProfileError(f"{path}: {exc}") from exc
    try:
        return FaultProfile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise FaultProfileError(f"{path}: {where}: {first['msg']}") from exc


class ActiveFaults:
    """A loaded profile at work in one mall process."""

    def __init__(self, profile: FaultProfile) -> None:
        self.profile = profile
        self.rng = random.Random(f"faults:{profile.seed}")
        self.latency = {f.route: f for f in profile.latency}
        self.errors = {f.route: f for f in profile.errors}

    @property
    def name(self) -> str:
        return self.profile.name

    def announce(self) -> None:
        p = self.profile
        log.warning("FAULT PROFILE ACTIVE: %s (%s) - this mall misbehaves on purpose",
                    p.name, p.description or "no description")
        for fault in p.latency:
            log.warning("FAULT latency on %s: %s", fault.route, fault.model_dump())
        for fault in p.errors:
            log.warning("FAULT errors on %s: %.2f%% answered %d", fault.route,
                        fault.rate * 100, fault.status)
        for fault in p.prices:
            log.warning("FAULT prices x%.3f on %s", fault.factor, fault.model_dump())

    def price(self, sku_id: int, stored_fen: int) -> int:
        """The price served for a SKU: its stored price, changed by the profile."""
        for change in self.profile.prices:
            if change.skus != "all" and sku_id not in change.skus:
                continue
            if change.share < 1 and _unit(f"{self.profile.seed}:{sku_id}") >= change.share:
                continue
            stored_fen = int(stored_fen * change.factor + 0.5)   # round half up, in fen
        return stored_fen

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        info = request.match_info
        resource = info.route.resource if info.http_exception is None else None
        route = f"{request.method} {resource.canonical}" if resource is not None else ""
        latency = self.latency.get(route)
        if latency is not None and self.rng.random() < latency.share:
            await asyncio.sleep(latency.draw(self.rng))
        errors = self.errors.get(route)
        if errors is not None and self.rng.random() < errors.rate:
            raise ApiError("injected_fault", f"fault profile {self.name}: injected error",
                           status=errors.status)
        return await handler(request)


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64
