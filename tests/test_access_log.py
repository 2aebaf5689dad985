"""The default access log of a real `xingcheng serve`: one JSON line per request, masked at
the source, written in batches off the request path, and complete after a clean stop."""

from __future__ import annotations

import json
import signal

import pytest

from shared.masking import mask_text

from .test_cli import call, serving


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_every_request_is_logged_masked_and_nothing_is_lost_on_a_clean_stop(tmp_path, stop):
    log = tmp_path / "serve.log"
    sent = 300
    with log.open("w") as out, serving(tmp_path / "m.db", log=out, stop=stop) as base:
        for n in range(sent):   # the last ones land just before the stop, inside one batch
            call(f"{base}/api/v1/stores?phone=1391234{n:04d}&n={n}")
    # serving() stopped the mall with `stop`: its cleanup wrote the last batch.
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


def test_no_access_log_writes_no_request_lines(tmp_path):
    log = tmp_path / "serve.log"
    with log.open("w") as out, serving(tmp_path / "m.db", "--no-access-log", log=out) as base:
        for n in range(20):
            assert call(f"{base}/api/v1/stores?phone=1391234{n:04d}")[0] == 400
    assert not [line for line in log.read_text().splitlines() if line.startswith("{")]


@pytest.mark.parametrize(("text", "masked"), [
    ("13912345678", "139****5678"),
    ("/api/v1/stores?phone=13912345678&n=1", "/api/v1/stores?phone=139****5678&n=1"),
    ("a13912345678b 15800001111", "a139****5678b 158****1111"),
    ("213912345678", "213912345678"),     # twelve digits: not a phone number
    ("139123456789", "139123456789"),
    ("12912345678", "12912345678"),       # no mobile prefix 12x
    ("/api/v1/stores/1/products", "/api/v1/stores/1/products"),
])
def test_the_mask_finds_phone_numbers_only_where_they_stand_alone(text, masked):
    """The pattern checks "no digit before" after its leading 1, for speed; these pin that it
    still means what it did."""
    assert mask_text(text) == masked
