"""Load from several machines: a mall, Locust's master and a load worker on three hosts,
made here as network namespaces joined by a bridge (`ip netns`, veth pairs, addresses of
their own).  The worker knows nothing but the master's address; the run passes and its
sessions are the one-process schedule, every one walked from the worker's host."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .test_run import planned, scenario_and_city, sessions_of

ROOT = Path(__file__).resolve().parent.parent
SUBNET = "10.213.{}.{}"
MALL, MASTER, WORKER = "mall", "master", "worker"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="making network namespaces (ip netns, veth) needs root and "
                              "iproute2"),
]


def ip(*args: str, ns: str | None = None) -> None:
    command = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=20)


@contextlib.contextmanager
def three_hosts():
    """{role: (namespace, address)}: the mall's host holds the bridge; master and worker
    are joined to it by veth pairs.  Removed on leaving, with every link in them."""
    tag = secrets.token_hex(3)
    net = int(tag[:2], 16) % 200 + 20
    hosts = {role: (f"xc-{role}-{tag}", SUBNET.format(net, n + 1))
             for n, role in enumerate((MALL, MASTER, WORKER))}
    try:
        for namespace, _ in hosts.values():
            ip("netns", "add", namespace)
            ip("link", "set", "lo", "up", ns=namespace)
        mall_ns, mall_address = hosts[MALL]
        ip("link", "add", "br0", "type", "bridge", ns=mall_ns)
        ip("addr", "add", f"{mall_address}/24", "dev", "br0", ns=mall_ns)
        ip("link", "set", "br0", "up", ns=mall_ns)
        for n, role in enumerate((MASTER, WORKER)):
            namespace, address = hosts[role]
            near, far = f"xc{tag}{n}a", f"xc{tag}{n}b"
            ip("link", "add", near, "type", "veth", "peer", "name", far)
            ip("link", "set", near, "netns", namespace)
            ip("link", "set", far, "netns", mall_ns)
            ip("link", "set", far, "master", "br0", ns=mall_ns)
            ip("link", "set", far, "up", ns=mall_ns)
            ip("addr", "add", f"{address}/24", "dev", near, ns=namespace)
            ip("link", "set", near, "up", ns=namespace)
        yield hosts
    finally:
        for namespace, _ in hosts.values():
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=20)


def on(host: tuple[str, str], args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", host[0], sys.executable, "-m",
                             "xingcheng.cli", *args], env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def test_a_master_and_a_worker_on_two_hosts_load_a_mall_on_a_third(tmp_path, env):
    scenario, db = scenario_and_city(tmp_path, env, "hosts")
    keys = tmp_path / "payment-keys.json"
    started: list[subprocess.Popen] = []
    shipped = (ROOT / "mall" / "data" / "risk_rules.toml").read_text(encoding="utf-8")
    rules = tmp_path / "risk-rules.toml"
    with three_hosts() as hosts:
        try:
            mall_host = hosts[MALL][1]
            # A whole city's customers come from the load hosts' addresses: the mall exempts
            # them from its per-address limits, as it does loopback for a run on one machine.
            assert 'exempt_addresses = ["127.0.0.1", "::1"]' in shipped
            rules.write_text(shipped.replace('exempt_addresses = ["127.0.0.1", "::1"]',
                                             f'exempt_addresses = ["{hosts[WORKER][1]}"]'))
            started.append(on(hosts[MALL], [
                "paysandbox", "--db", str(tmp_path / "payer.db"), "--keys", str(keys),
                "--host", mall_host, "--port", "8090"], env, tmp_path / "payer.log"))
            deadline = time.monotonic() + 60
            while not keys.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            started.append(on(hosts[MALL], [
                "serve", "--db", str(db), "--host", mall_host, "--port", "8080", "--clock",
                "2026-11-27T22:20+08:00@40", "--no-access-log", "--risk-rules", str(rules),
                "--payer",
                f"http://{mall_host}:8090", "--payer-keys", str(keys)], env,
                tmp_path / "mall.log"))
            worker = on(hosts[WORKER], ["loadgen", "--master", f"{hosts[MASTER][1]}:5557"],
                        env, tmp_path / "worker.log")
            started.append(worker)
            run = on(hosts[MASTER], [
                "run", str(scenario), "--target", f"http://{mall_host}:8080",
                "--master-bind", f"{hosts[MASTER][1]}:5557", "--expect-workers", "1",
                "--reports", str(tmp_path / "reports")], env, tmp_path / "run.log")
            started.append(run)
            run.wait(timeout=240)
        finally:
            for process in reversed(started):
                process.terminate()
            for process in started:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=15)
    said = (tmp_path / "run.log").read_text()
    assert run.returncode == 0, said + (tmp_path / "worker.log").read_text()[-2000:]
    assert "PASS hosts" in said
    report = next((tmp_path / "reports").iterdir())
    assert sessions_of(report) == planned(scenario)
    workers = json.loads((report / "client.json").read_text())["workers"]
    # every session was walked by the process on the worker's host
    assert [(w["pid"], w["scheduled"]) for w in workers] == [(worker.pid,
                                                              len(planned(scenario)))]
