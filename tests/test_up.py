"""`xingcheng up` as a developer uses it: the city serves within a minute, a customer it
names logs in, orders and pays by hand while the crowd shops, Ctrl-C stops everything with
`verify` clean (exit 0), and a second `up` on the folder resumes the same city and clock."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from .test_cli import call

pytestmark = pytest.mark.slow   # the district city's crowd, twice


class Up:
    """`xingcheng up` in a process of its own, its output read as it comes."""

    def __init__(self, folder: Path, env: dict, *args: str) -> None:
        self.out = folder.with_suffix(f".{time.time_ns()}.log")
        self.log = self.out.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "xingcheng.cli", "up", "--dir", str(folder), "--speed",
             "60", *args], stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def text(self) -> str:
        return self.out.read_text()

    def wait_for(self, pattern: str, seconds: float) -> re.Match:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            assert self.process.poll() is None, self.text()
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} within {seconds} s:\n{self.text()}")

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=120)
        self.log.close()
        return code


def test_up_serves_a_living_city_a_developer_can_shop_in(tmp_path, env):
    folder = tmp_path / "city"
    city = Up(folder, env)
    try:
        started = time.monotonic()
        base = city.wait_for(r"mall\s+(http://127\.0\.0\.1:\d+)", 60).group(1)
        assert time.monotonic() - started < 60
        payer = city.wait_for(r"payer\s+(http://\S+)", 5).group(1)
        customer = city.wait_for(r"customers\s+sandbox:(\S+?),", 5).group(1)
        store = int(city.wait_for(r"merchant\s+.*\(store (\d+)\)", 5).group(1))
        city.wait_for(r"[1-9][0-9.]* sessions/s", 60)   # the crowd is shopping
        status, login = call(f"{base}/api/v1/auth/wx-login", "POST",
                             {"code": f"sandbox:{customer}"})
        assert status == 200, login
        token = login["token"]
        status, page = call(f"{base}/api/v1/stores/{store}/products?limit=50", token=token)
        assert status == 200, page
        sku = next(s["sku_id"] for p in page["items"] for s in p["skus"] if s["available"] > 0)
        status, order = call(f"{base}/api/v1/orders", "POST", {
            "store_id": store, "lines": [{"sku_id": sku, "qty": 1}], "fulfilment": "pickup"},
            token)
        assert status == 201, order
        status, pay = call(f"{base}/api/v1/orders/{order['order_id']}/pay", "POST", None, token)
        assert status == 201, pay
        status, _ = call(f"{payer}/sandbox/payments/{pay['prepay_id']}/complete", "POST",
                         {"result": "success"})
        assert status == 202
        for _ in range(100):
            status, mine = call(f"{base}/api/v1/orders/{order['order_id']}", token=token)
            if mine["status"] != "pending_payment":
                break
            time.sleep(0.1)
        assert mine["status"] in ("paid", "ready_for_pickup", "completed"), mine
        orders = [int(n) for n in re.findall(r"orders (\d+) placed", city.text())]
        assert orders and orders[-1] > 10, city.text()   # others shop beside her
    finally:
        code = city.interrupt()
    assert code == 0, city.text()
    stopped = re.search(r"verify: every invariant holds; the city stopped at (\S+ \S+)",
                        city.text())
    assert stopped, city.text()
    stopped_at = datetime.fromisoformat(stopped.group(1))

    again = Up(folder, env, "--quiet-city", "--no-prometheus")
    try:
        clock = again.wait_for(r"clock\s+(\S+ \S+) at 60x", 60).group(1)
        base = again.wait_for(r"mall\s+(http://127\.0\.0\.1:\d+)", 5).group(1)
        # the clock goes on from where it stopped (shown to the minute)
        assert 0 <= (stopped_at - datetime.fromisoformat(clock)).total_seconds() < 60
        status, mine = call(f"{base}/api/v1/orders/{order['order_id']}", token=token)
        assert status == 200 and mine["order_id"] == order["order_id"]   # the same city
        assert "crowd       none (--quiet-city)" in again.text()
    finally:
        assert again.interrupt() == 0, again.text()
