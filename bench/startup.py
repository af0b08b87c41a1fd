"""Benchmark: how long `callmeter serve` takes to answer, and its memory at rest.

Start-up is from spawning the process to its first 200 from `/readyz` (database reachable), on
PostgreSQL and on the embedded SQLite (which also migrates a fresh database first). Memory is the
resident set once ready, and again after a warm-up of a few hundred dashboard reads and callbacks.

    python bench/startup.py --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import jwt  # noqa: E402

from bench.common import JWT_SECRET, create_database, drop_database, rss_kib, service_env  # noqa: E402


def start(database_url: str, port: int) -> tuple[subprocess.Popen[bytes], float]:
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "callmeter", "serve", "--port", str(port)],
        env=service_env(database_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process, time.perf_counter() - started
        except httpx.HTTPError:
            time.sleep(0.01)
        if process.poll() is not None or time.perf_counter() - started > 30:
            raise RuntimeError("callmeter serve did not start")


def warm_up(port: int) -> None:
    token = jwt.encode({"sub": "1", "exp": int(time.time()) + 600}, JWT_SECRET)
    query = (
        "{ usage { current { totalCalls totalCostUsd } calls(first: 50) { edges { node { callSid } } } } }"
    )
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
    ) as http:
        for _ in range(200):
            http.post("/graphql", json={"query": query}).raise_for_status()
            http.get("/api/usage/current").raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    postgres = create_database("bench_startup")
    try:
        from callmeter.db.migrate import migrate

        migrate(postgres)
        for label, make_url in [
            ("PostgreSQL", lambda: postgres),
            (
                "SQLite (fresh file, migrated at start)",
                lambda: f"sqlite:///{tempfile.mkdtemp()}/callmeter.db",
            ),
        ]:
            times, ready_rss, warm_rss = [], [], []
            for _ in range(args.runs):
                process, took = start(make_url(), 18780)
                try:
                    times.append(took)
                    time.sleep(0.5)
                    ready_rss.append(rss_kib(process.pid))
                    warm_up(18780)
                    warm_rss.append(rss_kib(process.pid))
                finally:
                    process.terminate()
                    process.wait()
            print(
                f"{label}: start-up median {statistics.median(times):.2f} s (min {min(times):.2f}, "
                f"max {max(times):.2f}, {args.runs} runs); RSS at rest "
                f"{statistics.median(ready_rss) / 1024:.0f} MiB, after warm-up "
                f"{statistics.median(warm_rss) / 1024:.0f} MiB"
            )
    finally:
        drop_database(postgres)


if __name__ == "__main__":
    main()
