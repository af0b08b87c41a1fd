"""Benchmark: dashboard reads with millions of calls stored (PostgreSQL, one `callmeter serve` process).

For each size (`--sizes 1000000,10000000`): a fresh database, bulk-loaded (bench/bulkload.py), then
each read below sent `--requests` times, one at a time, as the heaviest customer (10% of all calls).
Server-side latency is the service's own `Server-Timing` header; the client's includes loopback HTTP.
The deep page starts 90% of the way into that customer's history. `EXPLAIN (ANALYZE, BUFFERS)` of the
calls page query (the SQL `db/calls.py` sends) is printed for the deep page, so the plan can be read
next to the figures.

    python bench/reads.py --sizes 1000000,10000000

`--under-ingest`: while the reads are measured, a second `callmeter serve` (another process, its own
database) ingests signed callbacks as fast as it can (bench/ingest.py's closed loop, over and over),
so the reads share the two cores with ingest as they do in production.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
import jwt  # noqa: E402

from bench.bulkload import load  # noqa: E402
from bench.common import JWT_SECRET, create_database, drop_database, percentile, serve  # noqa: E402
from callmeter.months import UTC_CALENDAR  # noqa: E402

CALL_FIELDS = "callSid callFrom callTo status durationSeconds costUsd startedAt endedAt agent { name }"
MONTH_FIELDS = "month totalCalls totalSeconds totalMinutes totalCostUsd usageChargeUsd"


def graphql(query: str) -> tuple[str, dict]:
    return "POST", {"url": "/graphql", "json": {"query": query}}


def reads(deep_cursor: str) -> dict[str, tuple[str, dict]]:
    last_month = str(UTC_CALENDAR.current().previous())
    page = f"edges {{ cursor node {{ {CALL_FIELDS} }} }} pageInfo {{ hasNextPage endCursor }}"
    return {
        "usage { current }": graphql(f"{{ usage {{ current {{ {MONTH_FIELDS} }} }} }}"),
        "usage { month }": graphql(f'{{ usage {{ month(month: "{last_month}") {{ {MONTH_FIELDS} }} }} }}'),
        "usage { history } (24 months)": graphql(f"{{ usage {{ history {{ {MONTH_FIELDS} }} }} }}"),
        "calls(first: 50)": graphql(f"{{ usage {{ calls(first: 50) {{ {page} }} }} }}"),
        "calls(first: 20) (the dashboard's page)": graphql(
            f"{{ usage {{ calls(first: 20) {{ {page} }} }} }}"
        ),
        "calls(first: 50, after: deep)": graphql(
            f'{{ usage {{ calls(first: 50, after: "{deep_cursor}") {{ {page} }} }} }}'
        ),
        "calls(first: 50, status: COMPLETED)": graphql(
            f"{{ usage {{ calls(first: 50, status: COMPLETED) {{ {page} }} }} }}"
        ),
        "GET /api/usage/current": ("GET", {"url": "/api/usage/current"}),
        "GET /api/usage/history?month=": ("GET", {"url": f"/api/usage/history?month={last_month}"}),
        "GET /api/usage/calls?limit=50": ("GET", {"url": "/api/usage/calls?limit=50"}),
    }


async def deep_position(database_url: str, user: int) -> tuple[str, int, str]:
    """A cursor 90% of the way into the user's history; the count of their calls; the EXPLAIN output."""
    conn = await asyncpg.connect(database_url)
    total = await conn.fetchval(
        "SELECT total FROM (SELECT sum(total_calls) AS total FROM monthly_usage WHERE user_id = $1) AS t",
        user,
    )
    row = await conn.fetchrow(
        "SELECT sort_at, id FROM call_usage WHERE user_id = $1 "
        "ORDER BY sort_at DESC, id DESC OFFSET $2 LIMIT 1",
        user,
        int(total * 0.9),
    )
    plan = await conn.fetch(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT call_usage.*, agents.name FROM call_usage "
        "LEFT OUTER JOIN agents ON agents.id = call_usage.agent_id WHERE call_usage.user_id = $1 "
        "AND (call_usage.sort_at, call_usage.id) < ($2, $3) "
        "ORDER BY call_usage.sort_at DESC, call_usage.id DESC LIMIT 51",
        user,
        row["sort_at"],
        row["id"],
    )
    await conn.close()
    cursor = (
        base64.urlsafe_b64encode(f"{row['sort_at'].isoformat()}|{row['id']}".encode()).decode().rstrip("=")
    )
    return cursor, total, "\n".join("    " + line[0] for line in plan)


def measure(base_url: str, token: str, name: str, request: tuple[str, dict], count: int) -> tuple:
    method, options = request
    server, client = [], []
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        for i in range(count + 20):
            started = time.perf_counter()
            response = http.request(method, **options)
            took = (time.perf_counter() - started) * 1000
            assert response.status_code == 200 and "errors" not in response.text[:20], (
                name,
                response.text[:300],
            )
            if i >= 20:  # the first 20 warm caches and connections
                server.append(float(response.headers["server-timing"].split("dur=")[1]))
                client.append(took)
    return server, client


class Ingest:
    """bench/ingest.py's closed loop against a server of its own, repeated until `stop`."""

    def __init__(self, port: int = 18791) -> None:
        from bench import ingest

        self.port, self.ingest = port, ingest
        self.url = create_database("bench_reads_ingest")
        from callmeter.db.migrate import migrate

        migrate(self.url)
        asyncio.run(ingest.seed_agents(self.url, 200))
        self.calls = ingest.plan_calls(1500, 200)
        self.process = serve(self.url, port)
        self.done = threading.Event()
        self.events, self.seconds = 0, 0.0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            asyncio.run(self.ingest.reset(self.url))
            run = self.ingest.run_generator(self.port, self.calls, "closed", 32)
            self.events += 4 * len(self.calls)
            self.seconds += run["seconds"]

    def stop(self) -> str:
        self.done.set()
        self.thread.join()
        self.process.terminate()
        self.process.wait()
        drop_database(self.url)
        return f"ingest ran beside the reads at {self.events / max(self.seconds, 1e-9):,.0f} callbacks/s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,10000000", help="calls to load, one run per size")
    parser.add_argument("--requests", type=int, default=300, help="measured requests per read")
    parser.add_argument("--keep", action="store_true", help="keep each database (prints its URL)")
    parser.add_argument("--under-ingest", action="store_true", help="measure while another server ingests")
    args = parser.parse_args()
    token = jwt.encode({"sub": "1", "exp": int(time.time()) + 7200}, JWT_SECRET)
    for size in [int(s) for s in args.sizes.split(",")]:
        url = create_database("bench_reads")
        try:
            print(f"{size:,} calls:")
            from callmeter.db.migrate import migrate

            migrate(url)
            started = time.perf_counter()
            user = asyncio.run(load(url, calls=size))
            print(f"  loaded in {time.perf_counter() - started:.0f} s")
            cursor, total, plan = asyncio.run(deep_position(url, user))
            print(f"  customer {user} has {total:,} calls; the deep page starts at call {int(total * 0.9):,}")
            process = serve(url, 18790)
            ingest = Ingest() if args.under_ingest else None
            try:
                base = "http://127.0.0.1:18790"
                print(f"  {'read':<38} {'server p50':>10} {'p99':>8} {'client p50':>11} {'p99':>8}")
                for name, request in reads(cursor).items():
                    server, client = measure(base, token, name, request, args.requests)
                    print(
                        f"  {name:<38} {percentile(server, 50):>8.2f}ms {percentile(server, 99):>6.2f}ms "
                        f"{percentile(client, 50):>9.2f}ms {percentile(client, 99):>6.2f}ms"
                    )
            finally:
                process.terminate()
                process.wait()
                if ingest is not None:
                    print("  " + ingest.stop())
            print("  EXPLAIN of the deep calls page:")
            print(plan)
        finally:
            if args.keep:
                print(f"  kept {url}")
            else:
                drop_database(url)


if __name__ == "__main__":
    main()
