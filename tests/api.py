"""A thin HTTP client for tests: the mall is reached over a real socket, as clients do."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDict


@dataclass
class Reply:
    status: int
    body: object
    headers: CIMultiDict   # names are case-insensitive (HAProxy sends them lower-case)

    @property
    def error(self) -> dict:
        assert isinstance(self.body, dict) and "error" in self.body, self.body
        return self.body["error"]


class Api:
    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session

    async def call(self, method: str, path: str, *, token: str | None = None,
                   json: object = None, data: bytes | str | None = None,
                   headers: dict | None = None, params: dict | None = None) -> Reply:
        hdrs = dict(headers or {})
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.base_url + path, json=json, data=data,
                                        headers=hdrs, params=params) as resp:
            text = await resp.text()
            body = None
            if text:
                assert resp.content_type == "application/json" or path == "/metrics", text
                body = await resp.json() if resp.content_type == "application/json" else text
            return Reply(resp.status, body, CIMultiDict(resp.headers))

    async def get(self, path: str, **kw) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, **kw) -> Reply:
        return await self.call("POST", path, **kw)

    async def put(self, path: str, **kw) -> Reply:
        return await self.call("PUT", path, **kw)

    async def delete(self, path: str, **kw) -> Reply:
        return await self.call("DELETE", path, **kw)

    async def login(self, openid: str) -> str:
        reply = await self.post("/api/v1/auth/wx-login", json={"code": f"sandbox:{openid}"})
        assert reply.status == 200, reply.body
        return reply.body["token"]

    async def metrics(self) -> str:
        reply = await self.get("/metrics")
        assert reply.status == 200
        return reply.body

    async def metric(self, sample: str) -> float:
        """The value of one sample line, e.g. 'mall_orders_total{change="paid"}' (0 if absent)."""
        for line in (await self.metrics()).splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0
