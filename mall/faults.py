"""Fault profiles for rehearsals: a mall started with `--faults FILE` behaves like a bad
build on purpose (slow routes, errors on a route, higher prices), so release managers can see
the gate catch it before a real one does.

Never active unless named; the start-up log warns about every fault, and `mall_build_info`
carries the profile's name.  Each fault draws from its own generator seeded by the profile's
seed and the fault's place, so the n-th request on a route meets the same fate whatever other
routes receive: a rehearsal replays.  An injected error refuses the request before its handler
runs: nothing is half written."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Collection
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .config_files import load_toml
from .errors import ApiError

log = logging.getLogger("mall.faults")
Share = Annotated[float, Field(ge=0, le=1)]
Millis = Annotated[float, Field(ge=0, le=60_000)]
SPIN_S = 0.0015   # the end of a delay waited by spinning: more than asyncio.sleep overshoots


class FaultProfileError(ValueError):
    """A profile that cannot be used; the message names the file and every bad field."""


class _Strict(BaseModel):
    # A typo (`rat = 0.1`) must be an error, not a fault silently left out of a rehearsal.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Lognormal(_Strict):
    median_ms: Annotated[float, Field(gt=0, le=60_000)]
    sigma: Annotated[float, Field(ge=0, le=3)] = 0.5

    def draw_ms(self, rng: random.Random) -> float:
        return self.median_ms * rng.lognormvariate(0, self.sigma)

    def describe(self) -> str:
        return f"lognormal median {self.median_ms:g} ms, sigma {self.sigma:g}"


class Uniform(_Strict):
    low_ms: Millis
    high_ms: Millis

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high_ms < self.low_ms:
            raise ValueError("high_ms must not be below low_ms")
        return self

    def draw_ms(self, rng: random.Random) -> float:
        return rng.uniform(self.low_ms, self.high_ms)

    def describe(self) -> str:
        return f"uniform {self.low_ms:g}-{self.high_ms:g} ms"


class Exponential(_Strict):
    mean_ms: Annotated[float, Field(gt=0, le=60_000)]

    def draw_ms(self, rng: random.Random) -> float:
        return rng.expovariate(1 / self.mean_ms)

    def describe(self) -> str:
        return f"exponential mean {self.mean_ms:g} ms"


class _RouteFault(_Strict):
    route: str   # as the route table names it; checked against it by `ActiveFaults`


class Latency(_RouteFault):
    """Added time on a route: `fixed_ms`, or one distribution, on a `share` of requests."""

    fixed_ms: Millis | None = None
    lognormal: Lognormal | None = None
    uniform: Uniform | None = None
    exponential: Exponential | None = None
    share: Share = 1.0
    # The whole delay spins on the event loop: a build whose code costs that much more CPU,
    # rather than one waiting that long on something else.
    spin: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> Latency:
        given = [k for k in ("fixed_ms", "lognormal", "uniform", "exponential")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of fixed_ms, lognormal, uniform, exponential"
                             + (f" (got {', '.join(given)})" if given else ""))
        return self

    def draw_ms(self, rng: random.Random) -> float:
        for distribution in (self.lognormal, self.uniform, self.exponential):
            if distribution is not None:
                return distribution.draw_ms(rng)
        return self.fixed_ms or 0.0

    def describe(self) -> str:
        shape = next((d.describe() for d in (self.lognormal, self.uniform, self.exponential)
                      if d is not None), None) or f"fixed {self.fixed_ms:g} ms"
        return (f"{shape}{', spinning' if self.spin else ''}, on {self.share:.0%} of "
                "requests")


class Errors(_RouteFault):
    rate: Share
    status: Annotated[int, Field(ge=500, le=599)] = 503

    def describe(self) -> str:
        return f"{self.rate * 100:.2f}% answered {self.status}"


class Prices(_Strict):
    """A price change on all SKUs or listed SKUs, on a `share` of them chosen by a stable
    hash of the SKU id and the seed (so both malls of a rehearsal agree which ones)."""

    factor: Annotated[float, Field(gt=0, le=10)]
    skus: Literal["all"] | list[Annotated[int, Field(gt=0)]] = "all"
    share: Share = 1.0

    @field_validator("skus")
    @classmethod
    def _some(cls, skus: str | list[int]) -> str | list[int]:
        if not skus:
            raise ValueError('list at least one SKU id, or write skus = "all"')
        return skus

    def describe(self) -> str:
        which = "all SKUs" if self.skus == "all" else f"SKUs {self.skus}"
        return f"x{self.factor:g} on {which}" + ("" if self.share == 1 else
                                                   f" ({self.share:.0%} of them)")


class FaultProfile(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,60}$")]
    description: str = ""
    seed: int = 0
    latency: list[Latency] = []
    errors: list[Errors] = []
    prices: list[Prices] = []

    @field_validator("latency", "errors")
    @classmethod
    def _one_per_route(cls, faults: list[Latency] | list[Errors]) -> list:
        routes = [f.route for f in faults]
        twice = sorted({r for r in routes if routes.count(r) > 1})
        if twice:
            raise ValueError(f"one fault of a kind per route; listed twice: {', '.join(twice)}")
        return faults


def load_profile(path: Path, routes: Collection[str] | None = None) -> FaultProfile:
    """The profile in `path`; with `routes`, every route it names must be one of them."""
    profile = load_toml(path, FaultProfile, FaultProfileError)
    if routes is not None:
        check_routes(profile, routes, str(path))
    return profile


def check_routes(profile: FaultProfile, routes: Collection[str], where: str) -> None:
    """Refuse a fault on a route the mall does not serve ("METHOD /template" as the route
    table names it), naming the field."""
    for kind in ("latency", "errors"):
        for n, fault in enumerate(getattr(profile, kind)):
            if fault.route not in routes:
                raise FaultProfileError(
                    f"{where}: {kind}.{n}.route: {fault.route!r} is no route; write it as "
                    "mall/routes.py names it, method and template, e.g. "
                    "'POST /api/v1/orders/{order_id}/pay'")


class ActiveFaults:
    """A loaded profile at work in one mall process, serving `routes` ("METHOD /template",
    from the route table the app is built with: the profile's model does not import the
    routes, which import the services, which import the config that holds a profile)."""

    def __init__(self, profile: FaultProfile, routes: Collection[str]) -> None:
        check_routes(profile, routes, f"fault profile {profile.name}")
        self.profile = profile
        seed = profile.seed
        self.latency = {f.route: (f, random.Random(f"latency:{seed}:{f.route}"))
                        for f in profile.latency}
        self.errors = {f.route: (f, random.Random(f"errors:{seed}:{f.route}"))
                       for f in profile.errors}
        self._served: dict[tuple[int, int], int] = {}

    @property
    def name(self) -> str:
        return self.profile.name

    def announce(self) -> None:
        p = self.profile
        log.warning("FAULT PROFILE ACTIVE: %s (%s) - this mall misbehaves on purpose",
                    p.name, p.description or "no description")
        for fault in p.latency:
            log.warning("FAULT latency on %s: %s", fault.route, fault.describe())
        for fault in p.errors:
            log.warning("FAULT errors on %s: %s", fault.route, fault.describe())
        for change in p.prices:
            log.warning("FAULT prices %s", change.describe())

    def delay(self, route: str) -> float:
        """Seconds to hold a request on `route` (0 when it is spared)."""
        found = self.latency.get(route)
        if found is None:
            return 0.0
        fault, rng = found
        if fault.share < 1 and rng.random() >= fault.share:
            return 0.0
        return fault.draw_ms(rng) / 1000

    def refusal(self, route: str) -> Errors | None:
        """The error fault that refuses this request on `route`, if it does."""
        found = self.errors.get(route)
        if found is None:
            return None
        fault, rng = found
        return fault if rng.random() < fault.rate else None

    def price(self, sku_id: int, stored_fen: int) -> int:
        """The price served for a SKU: its stored price, changed by the profile (integer fen,
        rounded half up, never below 1 fen)."""
        key = (sku_id, stored_fen)
        served = self._served.get(key)
        if served is None:
            served = stored_fen
            for change in self.profile.prices:
                if change.skus != "all" and sku_id not in change.skus:
                    continue
                if change.share < 1 and _unit(f"{self.profile.seed}:{sku_id}") >= change.share:
                    continue
                exact = Decimal(served) * Decimal(repr(change.factor))
                served = max(1, int(exact.to_integral_value(ROUND_HALF_UP)))
            if len(self._served) >= 100_000:
                self._served.clear()  # bounded; a price is cheap to work out again
            self._served[key] = served
        return served

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        info = request.match_info
        resource = info.route.resource if info.http_exception is None else None
        if resource is not None:
            route = f"{request.method} {resource.canonical}"
            seconds = self.delay(route)
            if seconds > 0:
                await hold(seconds, self.latency[route][0].spin)
            refused = self.refusal(route)
            if refused is not None:
                raise ApiError("injected_fault", f"fault profile {self.name}: injected error",
                               status=refused.status)
        return await handler(request)


async def hold(seconds: float, spin: bool = False) -> None:
    """Hold a request for `seconds`, to a few microseconds.  asyncio's timers wake on epoll's
    millisecond ticks, so `asyncio.sleep(0.00045)` holds ~1.1 ms: a "+25%" fault on a 1.8 ms
    route measured +54%.  Sleep all but the last SPIN_S, then spin: the spun part holds the
    event loop, as the slower code that a latency fault stands for would.  With `spin`, all of
    it holds the loop."""
    deadline = time.perf_counter() + seconds
    if seconds > SPIN_S and not spin:
        await asyncio.sleep(seconds - SPIN_S)
    while time.perf_counter() < deadline:
        pass


def _unit(text: str) -> float:
    """A stable number in [0, 1) for a text (Python's hash() changes between processes)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") / 2**64
