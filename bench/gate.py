"""The call gate's latency: `POST /api/calls/authorize` at a steady rate, one `serve` worker, PostgreSQL.

    .venv/bin/python bench/gate.py [--rate 200] [--seconds 10] [--users 200]

Each of `--users` customers has an agent, a prepaid balance and a concurrency limit high enough
never to refuse; requests go out on an open loop at `--rate` per second (each customer's own token,
keep-alive connections, bodies encoded before the clock starts), and latency is counted from when
each request was due, so a slow answer delays none of the others' clocks. Every answer must be
200 and allowed, and afterwards the database must hold exactly one slot per request.
Target (issue 14): p99 < 10 ms at 200 authorizations/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import create_database, drop_database, percentile, serve, service_env, token  # noqa: E402

PORT = 18441


async def prepare(base: str, users: int) -> dict[int, int]:
    """Each user's agent id, with credit and limits set."""
    admin = {"authorization": f"Bearer {token(1, admin=True)}"}
    agents = {}
    async with httpx.AsyncClient(base_url=base, headers=admin, timeout=30) as client:
        for user in range(1, users + 1):
            query = (
                f'mutation {{ createAgent(input: {{userId: {user}, name: "a{user}", '
                f'phoneNumbers: ["+1666{user:07d}"]}}) {{ id }} '
                f'grantCredits(userId: {user}, amountUsd: "100.00", idempotencyKey: "g{user}") {{ id }} '
                f"setLimits(userId: {user}, input: {{maxConcurrentCalls: 100000, enforce: true}}) "
                "{ userId } }"
            )
            body = (await client.post("/graphql", json={"query": query})).json()
            assert "errors" not in body, body
            agents[user] = int(body["data"]["createAgent"]["id"])
    return agents


async def open_loop(
    base: str, agents: dict[int, int], rate: float, seconds: float
) -> tuple[list[float], int]:
    count = int(rate * seconds)
    users = sorted(agents)
    requests = [
        (
            {"authorization": f"Bearer {token(users[n % len(users)])}", "content-type": "application/json"},
            json.dumps({"agent_id": agents[users[n % len(users)]]}).encode(),
        )
        for n in range(count)
    ]
    latencies: list[float] = []
    refused = 0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        # Warm the connections and the server's caches first.
        await asyncio.gather(*(session.get(f"{base}/healthz") for _ in range(16)))
        start = time.perf_counter() + 0.2

        async def one(n: int) -> None:
            nonlocal refused
            due = start + n / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            headers, body = requests[n]
            async with session.post(f"{base}/api/calls/authorize", data=body, headers=headers) as answer:
                found = await answer.json()
            latencies.append((time.perf_counter() - due) * 1000)
            if answer.status != 200 or not found.get("allowed"):
                refused += 1

        await asyncio.gather(*(one(n) for n in range(count)))
    return latencies, refused


async def run(args: argparse.Namespace, database_url: str) -> None:
    import subprocess

    subprocess.run([sys.executable, "-m", "callmeter", "migrate"], env=service_env(database_url), check=True)
    process = serve(database_url, PORT, "--workers", "1")
    base = f"http://127.0.0.1:{PORT}"
    try:
        agents = await prepare(base, args.users)
        latencies, refused = await open_loop(base, agents, args.rate, args.seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    conn = await asyncpg.connect(database_url)
    try:
        held = await conn.fetchval("SELECT count(*) FROM call_authorizations")
    finally:
        await conn.close()
    assert refused == 0, f"{refused} requests refused or failed"
    assert held == len(latencies), (held, len(latencies))
    print(
        f"{len(latencies):,} authorizations at {args.rate:.0f}/s for {args.seconds:.0f} s, "
        f"{args.users} customers: "
        f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
        f"max {max(latencies):.1f} ms (target p99 < 10 ms); {held:,} slots held, one per request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args()
    database_url = create_database("callmeter_bench_gate")
    try:
        asyncio.run(run(args, database_url))
    finally:
        drop_database(database_url)


if __name__ == "__main__":
    main()
