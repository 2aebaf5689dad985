"""The default access log of a real `xingcheng serve`: one JSON line per request, masked at
the source, written in batches off the request path, and complete after a clean stop."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from .test_cli import XINGCHENG, call, free_port


def test_every_request_is_logged_masked_and_nothing_is_lost_on_a_clean_stop(tmp_path):
    port, log = free_port(), tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    with log.open("w") as out:
        proc = subprocess.Popen([*XINGCHENG, "serve", "--db", str(tmp_path / "m.db"), "--port",
                                 str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(150):
            try:
                if call(f"{base}/readyz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        sent = 300
        for n in range(sent):   # the last ones land just before the stop, inside one batch
            call(f"{base}/api/v1/stores?phone=1391234{n:04d}&n={n}")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    lines = [json.loads(line) for line in log.read_text().splitlines()
             if line.startswith("{")]
    mine = [entry for entry in lines if entry["path"].startswith("/api/v1/stores?phone=")]
    assert len(mine) == sent
    assert all(entry["path"].startswith("/api/v1/stores?phone=139****") for entry in mine)
    assert "1391234" not in log.read_text()
    first = mine[0]
    assert first["route"] == "/api/v1/stores" and first["status"] == 400
    assert first["method"] == "GET" and first["user_id"] is None
    assert first["ts"].startswith("20") and first["ts"].endswith("+08:00")
    assert isinstance(first["ms"], float) and first["remote"] == "127.0.0.1"
