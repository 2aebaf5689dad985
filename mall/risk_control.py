"""Risk control (风控): rate limits per account and per client address on the routes abuse
aims at (login floods, stock hoarding with unpaid orders), read from a rules file.

Each rule counts a key's requests in a sliding window of real seconds, kept as the times of
its last `limit` admissions (a deque per key: O(1) per request); the request that would be
one too many is refused with 429 and `Retry-After` (when the oldest admission leaves the
window), before its handler runs, and counted by rule.  Keys idle for a whole window are
dropped, so memory follows the keys active in the last window, not all keys ever seen.
Those windows are this process's own; with `--redis URL` every process (the workers of
`serve --workers N`, the instances behind a balancer) counts in one set of windows in Redis
instead (mall/shared_limits.py)."""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config_files import load_toml
from .errors import TooManyRequests
from .metrics import MallMetrics
from .shared_limits import SharedWindows

SHIPPED = Path(__file__).with_name("data") / "risk_rules.toml"
SWEEP_EVERY = 1024   # requests between sweeps of idle keys


class RiskRulesError(ValueError):
    """A rules file that cannot be used, naming the rule and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rule(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    route: Annotated[str, Field(pattern=r"^(GET|POST|PUT|DELETE|PATCH) /\S*$")]
    key: Literal["account", "address"]
    limit: Annotated[int, Field(ge=1, le=1_000_000)]
    window_seconds: Annotated[float, Field(gt=0, le=86_400)]


class RiskRules(_Strict):
    exempt_addresses: list[str] = []
    trust_forwarded_for: bool = False
    rule: list[Rule] = []

    @model_validator(mode="after")
    def _names_once(self) -> RiskRules:
        names = [r.name for r in self.rule]
        if len(set(names)) != len(names):
            raise ValueError("two rules share a name")
        return self


def load_rules(path: Path) -> RiskRules:
    return load_toml(path, RiskRules, RiskRulesError)


class _Window:
    """One rule's admissions per key, in a sliding window."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.seen: dict[object, deque[float]] = {}

    def wait(self, key: object, now: float) -> float:
        """Seconds until this key may pass again, 0 if it may now."""
        times = self.seen.get(key)
        if times is None or len(times) < self.rule.limit:
            return 0.0
        return max(0.0, times[0] + self.rule.window_seconds - now)

    def count(self, key: object, now: float) -> None:
        times = self.seen.get(key)
        if times is None:
            times = self.seen[key] = deque(maxlen=self.rule.limit)
        times.append(now)

    def forget_idle(self, now: float) -> None:
        cutoff = now - self.rule.window_seconds
        for key in [k for k, times in self.seen.items() if times[-1] <= cutoff]:
            del self.seen[key]


class RiskControl:
    def __init__(self, rules: RiskRules, metrics: MallMetrics,
                 shared: SharedWindows | None = None) -> None:
        self.rules = rules
        self.shared = shared
        self.exempt = frozenset(rules.exempt_addresses)
        self.metrics = metrics
        self._by_route: dict[str, list[_Window]] = {}
        for rule in rules.rule:
            self._by_route.setdefault(rule.route, []).append(_Window(rule))
        self._since_sweep = 0

    def _refuse(self, rule: Rule, wait: float) -> None:
        self.metrics.risk_rejections.labels(rule.name).inc()
        raise TooManyRequests(
            "rate_limited", f"too many requests ({rule.name}: {rule.limit} per "
            f"{rule.window_seconds:g} s); retry later",
            headers={"Retry-After": str(max(1, math.ceil(wait)))})

    def watches(self, route: str) -> bool:
        return route in self._by_route

    def address(self, request: web.Request) -> str | None:
        if self.rules.trust_forwarded_for:
            forwarded = request.headers.get("X-Forwarded-For", "")
            first = forwarded.split(",", 1)[0].strip()
            if first:
                return first
        return request.remote

    async def admit(self, route: str, request: web.Request, account: int | None) -> None:
        """Count this request under each rule of its route, or refuse it with 429: in this
        process's memory, or, with a shared store (`--redis`), in it for every process."""
        address = self.address(request)
        keyed = []
        for window in self._by_route[route]:
            key = account if window.rule.key == "account" else (
                None if address in self.exempt else address)
            if key is not None:
                keyed.append((window, key))
        if not keyed:
            return
        if self.shared is not None:
            refused = await self.shared.admit([(w.rule, key) for w, key in keyed])
            if refused is not None:
                self._refuse(*refused)
            return
        now = time.monotonic()
        for window, key in keyed:   # all rules judged before any counts: a refusal by one
            wait = window.wait(key, now)   # rule does not use up another's allowance
            if wait:
                self._refuse(window.rule, wait)
        for window, key in keyed:
            window.count(key, now)
        self._since_sweep += 1
        if self._since_sweep >= SWEEP_EVERY:
            self._since_sweep = 0
            for windows in self._by_route.values():
                for window in windows:
                    window.forget_idle(now)
