"""The load's HTTP client against real servers: requests well formed on the wire, answers
read whole, a kept-alive connection the server closed is not reused, an idempotent request
is sent again once when its connection breaks and a POST is not, a server that stays silent
is a failure and not a hang.  The client runs as the load does, in a process of its own
under gevent; the servers run here on real sockets."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap

CLIENT = textwrap.dedent("""
    import json, sys
    import gevent
    from loadtests.http_client import HttpClient

    class Event:                      # Locust's request event: what the client reports
        def __init__(self): self.fired = []
        def fire(self, **kw): self.fired.append(kw)

    event = Event()
    client = HttpClient(sys.argv[1], event, concurrency=2, network_timeout=1)
    out = []
    for step in json.loads(sys.argv[2]):
        if step[0] == "sleep":
            gevent.sleep(step[1])
            continue
        method, path, body, headers = step
        reply = client.send(method, path, json=body, headers=headers)
        client.report(method, path, "step", reply, {"side": "baseline"}, None)
        out.append({"status": reply.status_code, "body": reply.json(),
                    "error": type(reply.error).__name__ if reply.error else None,
                    "retry_after": reply.headers.get("Retry-After"),
                    "shed": "retry-after" in reply.headers, "ms": reply.elapsed_ms})
    print(json.dumps({"replies": out, "reported": [
        {k: e[k] for k in ("request_type", "name", "response_length", "url")}
        for e in event.fired]}))
""")


async def run_client(base_url: str, steps: list) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, base_url, json.dumps(steps),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


class RawServer:
    """An HTTP/1.1 server of a few lines that records what arrives and misbehaves on cue:
    `behaviour(request_number_on_connection, connection_number)` says "answer", "close"
    (hang up without an answer), "silent" (never answer) or "answer-then-close"."""

    def __init__(self, behaviour) -> None:
        self.behaviour = behaviour
        self.requests: list[tuple[int, bytes, bytes]] = []   # (connection, head, body)
        self.connections = 0

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *_) -> None:
        self.server.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.connections += 1
        connection, served = self.connections, 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = await reader.readexactly(length)
                self.requests.append((connection, head, body))
                served += 1
                what = self.behaviour(served, connection)
                if what == "close":
                    break
                if what == "silent":
                    await asyncio.sleep(5)
                    break
                answer = json.dumps({"connection": connection, "n": served}).encode()
                writer.write(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\n"
                             if b"/busy" in head else b"HTTP/1.1 200 OK\r\n")
                writer.write(b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % len(answer) + answer)
                await writer.drain()
                if what == "answer-then-close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


async def test_requests_reach_the_mall_as_a_mini_program_sends_them(mall, shop):
    """Against the real mall: a login by POST with a JSON body, then authorised GETs, one
    with a Chinese search word, each answered as the mall answers any client."""
    base = str(mall.server.make_url("")).rstrip("/")
    token = await mall.api.login("load-client")
    auth = {"Authorization": f"Bearer {token}"}
    seen = await run_client(base, [
        ["POST", "/api/v1/auth/wx-login", {"code": "sandbox:load-client"}, None],
        ["GET", f"/api/v1/stores/{shop.store_id}", None, auth],
        ["GET", f"/api/v1/stores/{shop.store_id}/products?q=米粉", None, auth],
        ["POST", "/api/v1/auth/wx-login", {"code": 7}, None]])
    login, store, search, refused = seen["replies"]
    # the same customer as the aiohttp client's login, so the body arrived intact
    assert login["status"] == 200 and login["body"]["user_id"] == (
        await mall.api.post("/api/v1/auth/wx-login",
                            json={"code": "sandbox:load-client"})).body["user_id"]
    assert store["status"] == 200 and store["body"]["id"] == shop.store_id
    direct = await mall.api.get(f"/api/v1/stores/{shop.store_id}/products",
                                params={"q": "米粉"}, token=token)
    assert search["status"] == 200 and search["body"] == direct.body
    assert refused["status"] == 400 and refused["body"]["error"]["field"] == "code"
    assert [r["request_type"] for r in seen["reported"]] == ["POST", "GET", "GET", "POST"]
    assert seen["reported"][1]["url"] == f"{base}/api/v1/stores/{shop.store_id}"
    assert all(r["response_length"] > 0 for r in seen["reported"])


async def test_the_wire_carries_one_well_formed_request_per_call():
    server = RawServer(lambda n, c: "answer")
    async with server as url:
        seen = await run_client(url, [
            ["POST", "/api/v1/orders", {"note": "少辣"}, {"Authorization": "Bearer t"}],
            ["GET", "/api/v1/busy", None, None],
            ["POST", "/api/v1/orders/7/cancel", None, None]])
    (_, post, body), (c2, get, _), (c3, empty_post, empty) = server.requests
    assert post.startswith(b"POST /api/v1/orders HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nAuthorization: Bearer t\r\n" in post
    assert b"\r\nContent-Type: application/json\r\n" in post
    assert json.loads(body) == {"note": "少辣"}
    assert f"Content-Length: {len(body)}\r\n".encode() in post
    assert get.startswith(b"GET /api/v1/busy HTTP/1.1\r\n") and b"Content-Length" not in get
    assert b"\r\nContent-Length: 0\r\n" in empty_post and empty == b""
    assert server.connections == 1 == c2 == c3    # one kept-alive connection for all three
    shed = seen["replies"][1]
    assert (shed["status"], shed["retry_after"], shed["shed"]) == (503, "2", True)


async def test_a_connection_the_server_closed_while_idle_is_not_reused():
    server = RawServer(lambda n, c: "answer-then-close")
    async with server as url:
        seen = await run_client(url, [["POST", "/a", {}, None], ["sleep", 0.2],
                                      ["POST", "/b", {}, None]])
    assert [r["status"] for r in seen["replies"]] == [200, 200]
    assert [c for c, _, _ in server.requests] == [1, 2]   # each POST sent once


async def test_a_get_is_sent_again_once_when_its_connection_breaks_and_a_post_is_not():
    # The first connection hangs up on its second request, before answering.
    server = RawServer(lambda n, c: "close" if (c, n) == (1, 2) else "answer")
    async with server as url:
        seen = await run_client(url, [["GET", "/first", None, None],
                                      ["GET", "/again", None, None]])
    assert [r["status"] for r in seen["replies"]] == [200, 200]
    assert [(c, h.split(b" ")[1]) for c, h, _ in server.requests] == [
        (1, b"/first"), (1, b"/again"), (2, b"/again")]

    server = RawServer(lambda n, c: "close" if (c, n) == (1, 2) else "answer")
    async with server as url:
        seen = await run_client(url, [["POST", "/first", {}, None],
                                      ["POST", "/pay", {}, None], ["POST", "/after", {}, None]])
    first, pay, after = seen["replies"]
    assert (first["status"], after["status"]) == (200, 200)
    assert pay["status"] == 0 and pay["error"] == "HTTPConnectionClosed"
    assert [h.split(b" ")[1] for _, h, _ in server.requests] == [b"/first", b"/pay", b"/after"]
    assert len(seen["reported"]) == 3   # the broken request is reported like any other


async def test_a_server_that_never_answers_is_a_failure_after_the_network_timeout():
    server = RawServer(lambda n, c: "silent")
    async with server as url:
        seen = await run_client(url, [["GET", "/slow", None, None]])
    (reply,) = seen["replies"]
    assert reply["status"] == 0 and reply["error"] in ("timeout", "TimeoutError")
    assert 900 <= reply["ms"] < 3000   # network_timeout=1 s: the GET is not sent again
    assert len(server.requests) == 1
