"""The `xingcheng` command as a user runs it: a real process on a real port."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

XINGCHENG = [sys.executable, "-m", "xingcheng.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(url: str, method: str = "GET", body: dict | None = None, token: str | None = None):
    request = urllib.request.Request(url, method=method,
                                     data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@contextlib.contextmanager
def serving(db: Path, *args: str, env: dict | None = None, log=subprocess.DEVNULL,
            stop: signal.Signals = signal.SIGTERM, command: str = "serve",
            port: int | None = None):
    """`xingcheng serve` (or `command`: paysandbox) on `port` or a free one, ready; stopped on
    leaving by `stop`."""
    port = port or free_port()
    proc = subprocess.Popen([*XINGCHENG, command, "--db", str(db), "--port", str(port), *args],
                            stderr=log, stdout=log, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                if call(f"{base}/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        proc.send_signal(stop)
        proc.wait(timeout=10)


@pytest.fixture
def served(tmp_path):
    db = tmp_path / "cli.db"
    token = subprocess.run([*XINGCHENG, "token", "--operator", "--db", str(db)],
                           capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    with (tmp_path / "serve.log").open("w+") as log, serving(
            db, "--clock", "2026-11-27T21:00+08:00@30", log=log) as base:
        yield base, token, log


def test_serve_runs_on_the_simulated_clock_and_accepts_a_cli_operator_token(served):
    base, token, _ = served
    status, ready = call(f"{base}/readyz")
    assert status == 200
    instant, speed = ready["clock"].split("@")
    assert speed == "30" and instant.startswith("2026-11-27T21:0")
    status, store = call(f"{base}/api/v1/admin/stores", "POST", token=token, body={
        "name": "四方坪夜宵", "kind": "snacks", "district": "开福区", "lat": 28.23,
        "lng": 113.01, "opens_at": "18:00", "closes_at": "03:00"})
    assert status == 201
    status, found = call(f"{base}/api/v1/stores?district=开福区&open_now=true"
                         .replace("开福区", "%E5%BC%80%E7%A6%8F%E5%8C%BA"))
    assert [s["id"] for s in found["items"]] == [store["store_id"]]


def test_access_log_masks_phone_numbers(served):
    base, _, log = served
    status, session = call(f"{base}/api/v1/auth/wx-login", "POST", {"code": "sandbox:logme"})
    assert status == 200
    status, _ = call(f"{base}/api/v1/me/addresses", "POST", token=session["token"], body={
        "contact_name": "李四", "phone": "13812345678", "district": "雨花区",
        "detail": "万家丽中路二段 18 号"})
    assert status == 201
    call(f"{base}/api/v1/stores?phone=13812345678")
    time.sleep(0.3)
    log.seek(0)
    text = log.read()
    assert "138****5678" in text
    assert "13812345678" not in text
    assert '"route": "/api/v1/me/addresses"' in text


def test_bad_clock_is_a_clear_usage_error():
    result = subprocess.run([*XINGCHENG, "serve", "--clock", "tomorrow"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "not an ISO 8601 instant" in result.stderr
