"""A store's dashboard at the city preset: GET /api/v1/merchant/stores/{id}/kpis for one day,
as merchants of random stores ask it, beside a store's detail page (GET /api/v1/stores/{id},
one indexed row) over the same connection in the same run; then the operator's view by
district and business circle.  Target: a store's day under 50 ms at p95.

    python benchmarks/store_kpis.py [--days 3] [--per-store 600] [--requests 300]

The city preset (1,000 stores) is generated once into the run cache; a copy gets `--days`
days of paid orders ending on Thursday 2026-11-26 (`--per-store` a day per store: the
preset's 600,000 daily orders), written straight into the file before the mall starts, as
the load would have left them: 1 to 3 lines each, 5% refunded, 80% handed over at the
counter, a visit per order and a third more visitors who did not buy.  The mall serves it
in its default configuration on core 0; the client asks on core 1, one question at a time
after a warm-up round.  The figure that counts is the mall's own histogram."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from discovery import at_the_mall, city_file
from mall_throughput import HOST, _exit_on_sigterm, free_port, server

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.clock import SHANGHAI  # noqa: E402

LAST_DAY = datetime(2026, 11, 26, tzinfo=SHANGHAI)
CLOCK = "2026-11-27T10:00:00+08:00@1"
TARGET_P95_MS = 50.0
KPIS = "/api/v1/merchant/stores/{store_id}/kpis"
SEED = 7


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def fill(db: Path, days: int, per_store: int) -> int:
    """`days` days of orders ending on LAST_DAY, written into the city's file; how many."""
    rng = random.Random(SEED)
    conn = sqlite3.connect(db)
    customers = [i for (i,) in conn.execute(
        "SELECT id FROM users WHERE role = 'customer' AND openid NOT LIKE 'merchant-%'")]
    skus: dict[int, list] = {}
    for store, sku, name, price in conn.execute(
            "SELECT p.store_id, k.id, p.name, k.price_fen FROM skus k"
            " JOIN products p ON p.id = k.product_id"):
        skus.setdefault(store, []).append((sku, name, price))
    counters = dict(conn.execute("SELECT store_id, MIN(id) FROM pickup_points GROUP BY store_id"))
    order_id = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM orders").fetchone()[0])
    orders, lines, payments, refunds, visits = [], [], [], [], set()
    for day in range(days):
        midnight = LAST_DAY - timedelta(days=days - 1 - day)
        for store, sold in skus.items():
            for _ in range(per_store):
                order_id += 1
                user = rng.choice(customers)
                paid = midnight + timedelta(seconds=rng.uniform(8 * 3600, 24 * 3600 - 1))
                picked = [rng.choice(sold) for _ in range(rng.randint(1, 3))]
                total = sum(price for _, _, price in picked)
                handed = paid + timedelta(seconds=rng.uniform(60, 1200))
                refunded = rng.random() < 0.05
                handed_over = not refunded and rng.random() < 0.8
                status = "refunded" if refunded else "completed" if handed_over else "paid"
                done = stamp(handed) if handed_over else None
                orders.append((order_id, user, store, status, counters[store], total, "123456",
                               stamp(paid - timedelta(seconds=40)),
                               stamp(paid + timedelta(minutes=15)), stamp(paid), done, done))
                lines += [(order_id, n, sku, name, price, 1)
                          for n, (sku, name, price) in enumerate(picked, 1)]
                hour = stamp(paid.replace(minute=0, second=0, microsecond=0))
                visits.add((store, hour, user))
                if rng.random() < 0.33:
                    visits.add((store, hour, rng.choice(customers)))
                if refunded:
                    payments.append((order_id, order_id, f"bench-{order_id}",
                                     f"bench-{order_id}", total, "succeeded", stamp(paid),
                                     stamp(paid)))
                    refunds.append((order_id, order_id, f"bench-r{order_id}", total,
                                    "changed_mind", "customer", "paid", "succeeded",
                                    stamp(paid + timedelta(minutes=5)),
                                    stamp(paid + timedelta(minutes=30))))
    with conn:
        conn.executemany(
            "INSERT INTO orders (id, user_id, store_id, status, fulfilment, pickup_point_id,"
            " total_fen, pickup_code, created_at, expires_at, paid_at, closed_at,"
            " handed_over_at) VALUES (?, ?, ?, ?, 'pickup', ?, ?, ?, ?, ?, ?, ?, ?)", orders)
        conn.executemany("INSERT INTO order_lines VALUES (?, ?, ?, ?, ?, ?)", lines)
        conn.executemany(
            "INSERT INTO payments (id, order_id, prepay_id, out_trade_no, amount_fen, status,"
            " created_at, settled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", payments)
        conn.executemany(
            "INSERT INTO refunds (order_id, payment_id, out_refund_no, amount_fen, reason,"
            " cause, from_status, status, requested_at, settled_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", refunds)
        conn.executemany("INSERT INTO store_visits VALUES (?, ?, ?)", sorted(visits))
        # History from before membership began, or the mall's sweeper would spend the run
        # earning points for every order written here (services/membership.earn_missed).
        conn.execute("UPDATE schema_migrations SET applied_at = ? WHERE version = 12",
                     (stamp(LAST_DAY + timedelta(days=1)),))
    conn.execute("ANALYZE")
    conn.close()
    return len(orders)


def ask(conn: http.client.HTTPConnection, path: str, token: str | None = None
        ) -> tuple[float, dict]:
    started = time.perf_counter()
    conn.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    reply = conn.getresponse()
    body = json.loads(reply.read())
    if reply.status != 200:
        raise RuntimeError(f"{path}: {reply.status} {body}")
    return (time.perf_counter() - started) * 1000, body


def login(conn: http.client.HTTPConnection, openid: str) -> str:
    conn.request("POST", "/api/v1/auth/wx-login", body=json.dumps({"code": f"sandbox:{openid}"}),
                 headers={"Content-Type": "application/json"})
    return json.loads(conn.getresponse().read())["token"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--per-store", type=int, default=600, help="orders a store a day")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    os.sched_setaffinity(0, {1})
    city = city_file()
    work = Path(tempfile.mkdtemp(prefix="store-kpis-"))
    try:
        db = work / "mall.db"
        shutil.copyfile(city, db)
        started = time.monotonic()
        made = fill(db, args.days, args.per_store)
        print(f"{made:,} orders over {args.days} days written in "
              f"{time.monotonic() - started:.0f} s", flush=True)
        port = free_port()
        command = [sys.executable, "-m", "xingcheng.cli", "serve", "--db", str(db), "--host",
                   HOST, "--port", str(port), "--clock", CLOCK, "--no-access-log"]
        rng = random.Random(SEED)
        stores = [rng.randint(1, 1000) for _ in range(args.requests)]
        day = LAST_DAY.date().isoformat()
        with server(command, f"http://{HOST}:{port}/readyz", work / "mall.log", timeout=300):
            conn = http.client.HTTPConnection(HOST, port, timeout=60)
            tokens = {s: login(conn, f"merchant-{SEED}-{s:05d}") for s in set(stores)}
            for store in stores[:20]:                      # warm-up
                ask(conn, f"{KPIS.format(store_id=store)}?from={day}", tokens[store])
            before = at_the_mall(port, {"kpis": KPIS})["kpis"]
            kpis, detail, sizes = [], [], []
            for store in stores:
                ms, body = ask(conn, f"{KPIS.format(store_id=store)}?from={day}", tokens[store])
                kpis.append(ms)
                sizes.append(body["paid_orders"])
                detail.append(ask(conn, f"/api/v1/stores/{store}")[0])
            after = at_the_mall(port, {"kpis": KPIS})["kpis"]
            customer = login(conn, "bench-customer")   # no operator: refused, as it must be
            conn.request("GET", f"/api/v1/admin/kpis?from={day}",
                         headers={"Authorization": f"Bearer {customer}"})
            refused = conn.getresponse()
            refused.read()
            token = subprocess.run(
                [sys.executable, "-m", "xingcheng.cli", "token", "--operator", "--db", str(db)],
                capture_output=True, text=True, check=True).stdout.strip()
            areas = [ask(conn, f"/api/v1/admin/kpis?from={day}", token)[0] for _ in range(3)]
            conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from crest_profile import histogram_quantile

    ordered = sorted((le, n - before.get(le, 0.0)) for le, n in after.items())
    mall_p50 = 1000 * histogram_quantile(ordered, 0.5)
    mall_p95 = 1000 * histogram_quantile(ordered, 0.95)
    print(f"city preset, {made:,} orders ({args.per_store} a store a day), "
          f"{args.requests} stores' days (median {np.median(sizes):.0f} paid orders each), "
          "one connection, mall on core 0, client on core 1")
    print("| question | at the mall p50 ms | p95 ms | client p50 ms | p95 ms | p99 ms |")
    print("|---|---|---|---|---|---|")
    print(f"| a store's day (kpis) | {mall_p50:.1f} | {mall_p95:.1f} | "
          f"{np.percentile(kpis, 50):.1f} | {np.percentile(kpis, 95):.1f} | "
          f"{np.percentile(kpis, 99):.1f} |")
    print(f"| a store's detail (reference) | | | {np.percentile(detail, 50):.2f} | "
          f"{np.percentile(detail, 95):.2f} | {np.percentile(detail, 99):.2f} |")
    print(f"operator's districts and circles for the day: {np.median(areas):.0f} ms "
          f"(median of 3); a customer asking it: {refused.status}")
    print(f"a store's day p95 at the mall {mall_p95:.1f} ms: target < {TARGET_P95_MS:g} ms "
          f"{'met' if mall_p95 < TARGET_P95_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
