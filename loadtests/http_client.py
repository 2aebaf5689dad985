"""The load's HTTP client: geventhttpclient's keep-alive connection pool and its response
parser (llhttp), with the request written here.

Locust's FastHttpSession passes every request through geventhttpclient's UserAgent (a cookie
jar, redirects, a URL object, a retry loop), and `HTTPClient.request` beneath it merges and
validates the headers in a case-insensitive multi-dict and checks the method, the target and
every header against regular expressions, twice over, per request.  The journeys send a
handful of requests of one shape, known to be well formed: the request head is one
f-string, sent with its body in one write, and the answer's headers land in a plain dict.
Those layers took about a third of the load generator's CPU, on the cores it shares with the
mall under test.  What Locust and the harness learn of a request is unchanged: the journey
reports it through Locust's own request event once it has judged the answer (`report`),
with the fields FastHttpSession sends."""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import gevent
import orjson
from gevent.monkey import get_original
from geventhttpclient.connectionpool import ConnectionPool
from geventhttpclient.response import (
    HTTPConnectionClosed,
    HTTPParseError,
    HTTPSocketPoolResponse,
)

_JSON = "Content-Type: application/json\r\nAccept: application/json\r\n"
_RESERVED = ":/?#[]@!$&'()*+,;=%"   # what a request target keeps as it is (RFC 3986)
_FAILURES = (OSError, gevent.Timeout, HTTPParseError)   # socket errors include timeouts
_WITH_BODY = frozenset(("POST", "PUT", "PATCH"))   # they send a length even when it is 0
_IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS"))
_BROKEN = (errno.ECONNRESET, errno.EPIPE)
_select = get_original("select", "select")   # select(2) itself, not gevent's cooperative one


class KeptAlivePool(ConnectionPool):
    """geventhttpclient's pool, checking a kept-alive connection before reuse with one
    select(2) that does not wait (readable while idle: the server closed it), where the
    pool's own check runs gevent's cooperative select, which builds and tears down a
    watcher and a greenlet's wait on every request."""

    def _is_socket_alive(self, sock) -> bool:
        try:
            return sock.fileno() >= 0 and not _select([sock], [], [], 0)[0]
        except (OSError, ValueError):
            return False


class ReplyHeaders(dict):
    """An answer's headers by lower-cased name (the parser's `headers_type`): a lookup is
    one dict access, not a case-insensitive multi-dict's.  A repeated header keeps its last
    value; the mall repeats none that the journeys read."""

    __slots__ = ()

    def add(self, name: str, value: str) -> None:
        self[name.lower()] = value

    def get(self, name: str, default: str | None = None) -> str | None:
        return dict.get(self, name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and dict.__contains__(self, name.lower())


@dataclass(slots=True)
class Reply:
    """An answer as the journey and Locust's listeners read it (`status_code`, `headers`,
    `content`, as on Locust's responses); status 0 and `error` when no answer came."""
    status_code: int
    content: bytes = b""
    headers: ReplyHeaders = field(default_factory=ReplyHeaders)
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
        host, port = url.hostname or "127.0.0.1", url.port or 80
        self.base_url = base_url
        self._prefix = url.path.rstrip("/")
        self._event = request_event
        self._host = f"Host: {host}:{port}\r\n" if port != 80 else f"Host: {host}\r\n"
        self._pool = KeptAlivePool(host, port, host, port, size=concurrency,
                                    network_timeout=network_timeout,
                                    connection_timeout=connection_timeout)

    def send(self, method: str, path: str, json: object = None,
             headers: dict | None = None) -> Reply:
        """One request, timed from its first byte sent to its last byte read.  A request
        whose kept-alive connection the server had closed is sent once more on a new one if
        it is idempotent; a POST is not sent again (it may have been processed)."""
        if not path.isascii() or " " in path:   # a search word in Chinese: its UTF-8
            path = quote(path, safe=_RESERVED)
        head = f"{method} {self._prefix}{path} HTTP/1.1\r\n{self._host}"
        if headers:
            head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        body = b""
        if json is not None:
            body = orjson.dumps(json)
            head += _JSON
        if body or method in _WITH_BODY:
            head += f"Content-Length: {len(body)}\r\n"
        message = (head + "\r\n").encode("latin-1") + body
        started, clock = time.time(), time.perf_counter()
        try:
            response = self._exchange(method, message)
            try:
                content = response.read()
            finally:
                response.release()
        except _FAILURES as error:
            return Reply(0, error=error, started=started,
                         elapsed_ms=(time.perf_counter() - clock) * 1000)
        return Reply(response.status_code, content, response.info(), started=started,
                     elapsed_ms=(time.perf_counter() - clock) * 1000)

    def _exchange(self, method: str, message: bytes, again: bool = True
                  ) -> HTTPSocketPoolResponse:
        """Send `message` and read the answer's head on a pooled connection; `again`: an
        idempotent request may be sent once more if that connection turns out closed."""
        again = again and method in _IDEMPOTENT
        sock = self._pool.get_socket()
        try:
            sent = sock.send(message)   # all of it, nearly always: no sendall loop
            if sent < len(message):
                sock.sendall(message[sent:])
        except OSError as error:
            self._pool.release_socket(sock)
            if again and error.errno in _BROKEN:
                return self._exchange(method, message, again=False)
            raise
        try:   # the response returns the connection to the pool, or closes it
            return HTTPSocketPoolResponse(sock, self._pool, block_size=65536, method=method,
                                          headers_type=ReplyHeaders)
        except HTTPConnectionClosed:
            if again:
                return self._exchange(method, message, again=False)
            raise

    def report(self, method: str, path: str, name: str, reply: Reply, context: dict,
               failure: BaseException | None) -> None:
        """Tell Locust (its statistics, and every listener of the run) about one request."""
        self._event.fire(request_type=method, name=name, response_time=reply.elapsed_ms,
                         response_length=len(reply.content), response=reply,
                         context=context, exception=failure, start_time=reply.started,
                         url=self.base_url + path)
