"""Seconds and peak memory to generate the `city` preset (1,000 stores, 1,000,000 customers,
~100 SKUs per store) and load it into the mall's SQLite file.

Beside it, the reference from ../shared/reference-figures.md measured in the same run:
sampling one million customers from Faker-built pools and inserting them with
`executemany` — the floor any generator on this machine stands on.

    python benchmarks/city_generation.py [--preset city] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS, TARGET_RSS_MIB = 30.0, 2048.0


def run_generate(preset: str, seed: int, db: Path) -> tuple[float, float]:
    """Wall seconds and the child's peak RSS (MiB) of `xingcheng city generate`."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "xingcheng.cli", "city", "generate", "--preset",
                    preset, "--seed", str(seed), "--db", str(db)], check=True,
                   stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def reference(db: Path, customers: int = 1_000_000) -> float:
    """Pools from Faker once, a million samples, one executemany."""
    from faker import Faker

    started = time.perf_counter()
    fake = Faker("zh_CN")
    fake.seed_instance(1)
    names = [fake.name() for _ in range(4000)]
    phones = [fake.phone_number() for _ in range(4000)]
    rng = random.Random(1)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, openid TEXT UNIQUE, name TEXT,"
                 " phone TEXT)")
    with conn:
        conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?)", (
            (i, f"o{rng.getrandbits(96):024x}", rng.choice(names),
             (lambda p: f"{p[:3]}****{p[-4:]}")(rng.choice(phones)))
            for i in range(1, customers + 1)))
    conn.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="city")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref = reference(Path(tmp) / "reference.db")
        seconds, rss = run_generate(args.preset, args.seed, Path(tmp) / "city.db")
        size = (Path(tmp) / "city.db").stat().st_size / 2**20
    print(f"{'measure':<44} {'figure':>10} {'target':>10}")
    print(f"{'reference: 1M customers from pools + executemany':<44} {ref:>9.1f}s")
    print(f"{f'city generate --preset {args.preset} (wall)':<44} {seconds:>9.1f}s "
          f"{TARGET_SECONDS:>9.0f}s  {'met' if seconds <= TARGET_SECONDS else 'MISSED'}")
    print(f"{'city generate peak RSS':<44} {rss:>8.0f}MiB {TARGET_RSS_MIB:>7.0f}MiB  "
          f"{'met' if rss <= TARGET_RSS_MIB else 'MISSED'}")
    print(f"{'database size':<44} {size:>8.0f}MiB")
    print(f"ratio to reference: {seconds / ref:.1f}x")


if __name__ == "__main__":
    main()
