"""The load's HTTP client: geventhttpclient's keep-alive connection pool, the engine under
Locust's FastHttpSession, without the browser the session builds on it.

FastHttpSession passes every request through geventhttpclient's UserAgent: a cookie jar
(the mall's API keeps no cookies), redirects (it sends none), a parsed URL object, a request
object and a retry loop per request.  Those layers took about a quarter of the load
generator's CPU, on the cores it shares with the mall under test.  Here a request is one
call on the host's connection pool; what Locust and the harness learn of it is unchanged,
because the journey reports each request through Locust's own request event once it has
judged the answer (`report`), with the same fields FastHttpSession sends."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import gevent
import orjson
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError

_JSON = {"Content-Type": "application/json", "Accept": "application/json"}
_RESERVED = ":/?#[]@!$&'()*+,;=%"   # what a request target keeps as it is (RFC 3986)
_FAILURES = (OSError, gevent.Timeout, HTTPParseError)   # socket errors include timeouts


@dataclass(slots=True)
class Reply:
    """An answer as the journey and Locust's listeners read it (`status_code`, `headers`,
    `content`, as on Locust's responses); status 0 and `error` when no answer came."""
    status_code: int
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    error: BaseException | None = None
    started: float = 0.0        # Unix time, as Locust's events carry it
    elapsed_ms: float = 0.0

    def json(self) -> object:
        """The body as JSON, or None when it is empty or not JSON."""
        try:
            return orjson.loads(self.content) if self.content else None
        except orjson.JSONDecodeError:
            return None


class HttpClient:
    """Keep-alive connections to one host, at most `concurrency` at a time."""

    def __init__(self, base_url: str, request_event, concurrency: int,
                 network_timeout: float = 30, connection_timeout: float = 10) -> None:
        url = urlsplit(base_url)
        self.base_url = base_url
        self._prefix = url.path.rstrip("/")
        self._event = request_event
        # A catalogue page is 5-15 KB: read in one call, not in 4 KB blocks.
        self._http = HTTPClient(url.hostname or "127.0.0.1", url.port, concurrency=concurrency,
                                network_timeout=network_timeout,
                                connection_timeout=connection_timeout, block_size=65536)

    def send(self, method: str, path: str, json: object = None,
             headers: dict | None = None) -> Reply:
        """One request, timed from its first byte sent to its last byte read.  A request
        whose connection breaks is not sent again here: POST is not idempotent (the pool
        itself retries a GET once on a connection the server had closed)."""
        if not path.isascii():   # a search word in Chinese: its UTF-8, percent-encoded
            path = quote(path, safe=_RESERVED)
        body = b""
        if json is not None:
            body = orjson.dumps(json)
            headers = {**_JSON, **headers} if headers else _JSON
        started, clock = time.time(), time.perf_counter()
        try:
            response = self._http.request(method, self._prefix + path, body=body,
                                          headers=headers)
            try:
                content = response.read()
            finally:
                response.release()
        except _FAILURES as error:
            return Reply(0, error=error, started=started,
                         elapsed_ms=(time.perf_counter() - clock) * 1000)
        return Reply(response.status_code, content, response.info(), started=started,
                     elapsed_ms=(time.perf_counter() - clock) * 1000)

    def report(self, method: str, path: str, name: str, reply: Reply, context: dict,
               failure: BaseException | None) -> None:
        """Tell Locust (its statistics, and every listener of the run) about one request."""
        self._event.fire(request_type=method, name=name, response_time=reply.elapsed_ms,
                         response_length=len(reply.content), response=reply,
                         context=context, exception=failure, start_time=reply.started,
                         url=self.base_url + path)
