"""Risk-control windows shared by every process through Redis: one sorted set per rule and
key, holding the instants of its admissions in the last window.  One Lua script judges all
the rules a request falls under and, only when none refuses, counts it under each: atomic in
Redis, so N processes admit exactly what one would.  Instants are Redis's own clock (TIME),
the same for every process and host.

Redis away is no reason to refuse customers: a request is then admitted, counted in
`mall_risk_store_errors_total` and logged, and the limits hold again once Redis is back."""

from __future__ import annotations

import itertools
import logging
import os

import redis.asyncio as redis
from redis.exceptions import RedisError

from .metrics import MallMetrics

log = logging.getLogger("mall.risk")

# KEYS: one sorted set per (rule, key); ARGV: a unique member, then limit and window (ms)
# for each key.  Returns {} when admitted (and counted), else {index, wait_ms} of the first
# rule that refuses.
_ADMIT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i, key in ipairs(KEYS) do
    local limit, window = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms - window)
    if redis.call('ZCARD', key) >= limit then
        local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
        return {i, tonumber(oldest[2]) + window - now_ms}
    end
end
for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now_ms, ARGV[1])
    redis.call('PEXPIRE', key, tonumber(ARGV[2 * i + 1]))
end
return {}
"""


class SharedWindows:
    def __init__(self, url: str, metrics: MallMetrics, prefix: str = "xingcheng:risk") -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5,
                                           socket_connect_timeout=0.5)
        self._script = self._redis.register_script(_ADMIT)
        self._prefix = prefix
        self._metrics = metrics
        self._ids = itertools.count()
        self._me = f"{os.getpid()}-{id(self):x}"

    async def admit(self, keyed: list) -> tuple | None:
        """None when every (rule, key) admits the request (it is counted), else (the
        refusing rule, seconds to wait)."""
        keys = [f"{self._prefix}:{rule.name}:{key}" for rule, key in keyed]
        args: list = [f"{self._me}-{next(self._ids)}"]
        for rule, _ in keyed:
            args += [rule.limit, int(rule.window_seconds * 1000)]
        try:
            refused = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            self._metrics.risk_store_errors.inc()
            log.warning("risk control's Redis is away, admitting: %s", exc)
            return None
        if not refused:
            return None
        return keyed[int(refused[0]) - 1][0], max(0.0, float(refused[1]) / 1000)

    async def close(self) -> None:
        await self._redis.aclose()
