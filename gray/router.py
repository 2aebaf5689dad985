"""The gray router: a small gateway in front of a baseline and a canary mall that serve one
database.  It decides each request's side (`rules`), passes the request on unchanged but for
forwarding headers, and passes the answer back unchanged but for `X-Gray-Side`, which tells
clients (and the load generator, which files each sample under it) who answered, and
`X-Gray-Reason`, which rule decided.

It never turns a backend's answer into another: a 4xx or 5xx of a mall reaches the client
as the mall sent it.  Only what the router itself meets is its own: a mall it cannot reach
(502) or that does not answer in time (504), in the mall's error shape, and nothing retried,
as a retried order could be an order made twice.

Two engines carry the requests: HAProxy (`haproxy.py`, the default: it adds a fraction of
what a Python hop adds) or this module's own aiohttp proxy (`--engine python`, for a machine
without HAProxy).  Either way this module owns the rules, the admin API and the audit.

Operators change the rules at runtime (`PUT /router/rules` with the router's admin token);
every change is appended to the audit file with who, when, from what and to what."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.clock import Clock

from .haproxy import HaproxyFront
from .metrics import RouterMetrics
from .rules import BASELINE, CANARY, Decision, Rules
from .sessions import Sessions

log = logging.getLogger("gray")

SIDE_HEADER = "X-Gray-Side"
# Why: tester, store, session, share, or default (the request named no one and no store).
REASON_HEADER = "X-Gray-Reason"
# A store named in the path: the customer's catalogue, a merchant's or an operator's store.
_STORE_PATH = re.compile(r"^/api/v\d+/(?:merchant/|admin/)?stores/(\d{1,12})(?:/|$)")
_ORDERS = re.compile(r"^/api/v\d+/orders/?$")
_HOP_BY_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade", "Host", "Content-Length"))


@dataclass
class RouterConfig:
    baseline: str                  # base URLs of the two malls
    canary: str
    admin_token: str
    audit_path: Path
    rules: Rules = field(default_factory=Rules)
    session_ttl_s: float = 1800.0
    upstream_timeout_s: float = 30.0
    clock: Clock = field(default_factory=Clock)
    engine: str = "python"         # or "haproxy": HAProxy carries the requests
    listen: tuple[str, int] = ("127.0.0.1", 8070)  # HAProxy's address, the router's own
    workdir: Path | None = None    # HAProxy's config, rules map and sockets

    @property
    def admin_socket(self) -> Path:
        """Where the admin API listens behind HAProxy."""
        assert self.workdir is not None
        return self.workdir / "admin.sock"


class RulesChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: Rules
    note: str = Field(default="", max_length=200)


class Router:
    """The running router's state: the rules in force, sessions, upstream connections."""

    def __init__(self, config: RouterConfig, metrics: RouterMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.upstreams = {BASELINE: config.baseline.rstrip("/"),
                          CANARY: config.canary.rstrip("/")}
        self.decision = Decision(Rules())
        self.sessions = Sessions(config.session_ttl_s)
        self.client: aiohttp.ClientSession | None = None
        self._users: dict[str, str | None] = {}
        self._anonymous_credit = 0.0
        self._changing = asyncio.Lock()
        self.front: HaproxyFront | None = None
        self.epoch = 0
        if config.engine == "haproxy":
            assert config.workdir is not None
            self.front = HaproxyFront(
                listen=config.listen, baseline=config.baseline, canary=config.canary,
                timeout_s=config.upstream_timeout_s, workdir=config.workdir, metrics=metrics)

    async def open(self) -> None:
        self.client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
            timeout=aiohttp.ClientTimeout(total=self.config.upstream_timeout_s),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"))
        try:
            await self.apply(self.config.rules, actor="startup", remote=None,
                             note="initial rules")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self.front is not None:
            await self.front.stop()
        if self.client is not None:
            await self.client.close()

    # --- rules -----------------------------------------------------------------------------

    async def apply(self, rules: Rules, *, actor: str, remote: str | None, note: str) -> dict:
        """Put `rules` in force (after resolving their districts to stores) and audit it."""
        async with self._changing:
            district_stores = await self._stores_of(rules.districts)
            before = self.decision.rules
            decision = Decision(rules, district_stores)
            if self.front is not None:
                await self.front.put(decision, self.epoch + 1)
                self.epoch += 1
            self.decision = decision
            self.sessions.clear()
            self.metrics.rules_changes.inc()
            self.metrics.canary_share.set(rules.share)
            entry = {"at": self.config.clock.stamp(), "actor": actor, "remote": remote,
                     "note": note, "from": before.describe(), "to": rules.describe(),
                     "district_stores": sorted(district_stores)}
            with self.config.audit_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            log.info("rules now %s (%s)", rules.describe(), actor)
            return entry

    async def _stores_of(self, districts: frozenset[str]) -> frozenset[int]:
        """The stores of these districts, from the baseline's own store listing."""
        found: set[int] = set()
        assert self.client is not None
        for district in sorted(districts):
            cursor = None
            while True:
                params = {"district": district, "limit": "50", **({"cursor": cursor}
                                                                  if cursor else {})}
                async with self.client.get(f"{self.upstreams[BASELINE]}/api/v1/stores",
                                           params=params) as resp:
                    body = await resp.json(content_type=None)
                if resp.status == 400:
                    raise UnknownDistrict(district)
                if resp.status != 200:
                    raise RuntimeError(f"store listing answered {resp.status}: {body}")
                found.update(item["id"] for item in body["items"])
                cursor = body.get("next_cursor")
                if not cursor:
                    break
        return frozenset(found)

    # --- one request -----------------------------------------------------------------------

    def user_of(self, authorization: str | None) -> str | None:
        """The user a bearer token names, read but not verified: only for routing, as the
        mall behind verifies every token (a forged one gets its 401 from either side)."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization[7:].strip()
        if token in self._users:
            return self._users[token]
        try:
            claims = token.split(".", 1)[0]
            user = str(int(json.loads(base64.urlsafe_b64decode(
                claims + "=" * (-len(claims) % 4)))["uid"]))
        except (ValueError, KeyError, TypeError):
            user = None
        if len(self._users) >= 100_000:
            self._users.clear()
        self._users[token] = user
        return user

    def side(self, request: web.Request, body: bytes) -> tuple[str, str]:
        store_id = _store_named(request, body)
        user = self.user_of(request.headers.get("Authorization"))
        side, why = self.decision.side(
            tester=request.headers.get(SIDE_HEADER), store_id=store_id, user=user,
            last=self.sessions.last(user) if user is not None else None)
        if user is not None:
            if why in ("store", "share", "session"):   # each keeps the session alive
                self.sessions.went(user, side)
        elif why == "default":
            side = self._anonymous_side()
        return side, why

    def _anonymous_side(self) -> str:
        """Requests of no one yet (logging in, public pages) in proportion to the share,
        spread evenly and deterministically rather than at random."""
        self._anonymous_credit += self.decision.rules.share
        if self._anonymous_credit >= 1.0:
            self._anonymous_credit -= 1.0
            return CANARY
        return BASELINE


class UnknownDistrict(ValueError):
    pass


def _store_named(request: web.Request, body: bytes) -> int | None:
    found = _STORE_PATH.match(request.path)
    if found:
        return int(found.group(1))
    if request.method == "POST" and body and _ORDERS.match(request.path):
        try:
            store_id = json.loads(body).get("store_id")
        except (ValueError, AttributeError):
            return None  # the mall answers the bad body itself
        return store_id if isinstance(store_id, int) else None
    return None


ROUTER = web.AppKey("router", Router)


def _error(status: int, code: str, message: str, field_name: str | None = None,
           headers: dict | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "field": field_name}},
                             status=status, headers=headers)


async def proxy(request: web.Request) -> web.StreamResponse:
    router = request.app[ROUTER]
    body = await request.read()
    side, why = router.side(request, body)
    headers = CIMultiDict((k, v) for k, v in request.headers.items()
                          if k.lower() not in _HOP_BY_HOP)
    forwarded = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = (f"{forwarded}, {request.remote}" if forwarded
                                  else str(request.remote))
    started = time.perf_counter()
    assert router.client is not None
    try:
        async with router.client.request(
                request.method, router.upstreams[side] + request.raw_path, headers=headers,
                data=body or None, allow_redirects=False) as upstream:
            payload = await upstream.read()
            status = upstream.status
            answer = CIMultiDict((k, v) for k, v in upstream.headers.items()
                                 if k.lower() not in _HOP_BY_HOP)
    except TimeoutError:
        router.metrics.observe(side, "timeout", time.perf_counter() - started)
        return _error(504, "upstream_timeout", f"the {side} mall did not answer in "
                      f"{router.config.upstream_timeout_s:g} s", headers={SIDE_HEADER: side})
    except aiohttp.ClientError as exc:
        router.metrics.observe(side, "unreachable", time.perf_counter() - started)
        return _error(502, "upstream_unreachable", f"the {side} mall cannot be reached: "
                      f"{type(exc).__name__}", headers={SIDE_HEADER: side})
    router.metrics.observe(side, f"{status // 100}xx", time.perf_counter() - started)
    answer[SIDE_HEADER] = side
    answer[REASON_HEADER] = why
    return web.Response(status=status, body=payload, headers=answer)


def _admin(request: web.Request) -> str:
    """The operator's name, from `X-Operator`, once the admin token is right."""
    token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    expected = request.app[ROUTER].config.admin_token
    if not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": {"code": "invalid_token", "message":
                                       "the router's admin token is required",
                                       "field": "Authorization"}}),
            content_type="application/json")
    return request.headers.get("X-Operator", "operator")[:64]


async def get_rules(request: web.Request) -> web.Response:
    _admin(request)
    router = request.app[ROUTER]
    return web.json_response({"rules": router.decision.rules.describe(),
                              "canary_stores": sorted(router.decision.canary_stores)})


async def put_rules(request: web.Request) -> web.Response:
    actor = _admin(request)
    try:
        change = RulesChange.model_validate_json(await request.read())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return _error(422, "invalid_field", f"{where}: {first['msg']}", where)
    try:
        entry = await request.app[ROUTER].apply(change.rules, actor=actor,
                                                remote=request.remote, note=change.note)
    except UnknownDistrict as exc:
        return _error(422, "unknown_district", f"{exc} is not a district of the mall",
                      "rules.districts")
    except (RuntimeError, OSError, aiohttp.ClientError) as exc:
        log.error("rules not changed: %s", exc)
        return _error(503, "rules_not_applied", f"the rules were not put in force: {exc}")
    return web.json_response(entry)


async def get_audit(request: web.Request) -> web.Response:
    _admin(request)
    path = request.app[ROUTER].config.audit_path
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return web.json_response({"items": [json.loads(line) for line in lines[-200:]]})


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[ROUTER].metrics.registry
    return web.Response(body=generate_latest(registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(config: RouterConfig) -> web.Application:
    app = web.Application(client_max_size=1024**2)
    app[ROUTER] = Router(config, RouterMetrics())

    async def upstreams(app: web.Application) -> AsyncIterator[None]:
        await app[ROUTER].open()
        yield
        with contextlib.suppress(Exception):
            await app[ROUTER].close()

    app.cleanup_ctx.append(upstreams)
    app.router.add_get("/router/healthz", healthz)
    app.router.add_get("/router/metrics", metrics)
    app.router.add_get("/router/rules", get_rules)
    app.router.add_put("/router/rules", put_rules)
    app.router.add_get("/router/audit", get_audit)
    if config.engine == "python":
        app.router.add_route("*", "/{tail:.*}", proxy)
    return app
