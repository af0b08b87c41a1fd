"""The call gate's latency: `POST /api/calls/authorize` at a steady rate, one `serve` worker, PostgreSQL.

    .venv/bin/python bench/gate.py [--rate 200] [--seconds 10] [--users 200]

Each of `--users` customers has an agent, a prepaid balance and a concurrency limit high enough
never to refuse; requests go out on an open loop at `--rate` per second (each customer's own token,
keep-alive connections, bodies encoded before the clock starts), and latency is counted from when
each request was due, so a slow answer delays none of the others' clocks. Every answer must be
200 and allowed, and afterwards the database must hold exactly one slot per request. The same
loop against `/readyz` (one database round trip) first shows what the machine itself adds: on a
shared 2-core machine its tail moves from run to run as much as the gate's.
Target (issue 14): p99 < 10 ms at 200 authorizations/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_seconds, create_database, drop_database, percentile, serve, service_env, token  # noqa: E402

PORT = 18441
WARM_UP = 40


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


@dataclass
class Timings:
    latencies: list[float] = field(default_factory=list)  # from each request's due time, client side
    server: list[float] = field(default_factory=list)  # the service's own (Server-Timing)
    refused: int = 0
    cpu_ms: float = 0.0  # the service process's CPU time a request


async def open_loop(
    session: aiohttp.ClientSession, url: str, requests: list[tuple[dict[str, str], bytes | None]], rate: float
) -> Timings:
    """POST each request (GET if it has no body) at its due time, `rate` a second."""
    timings = Timings()
    start = time.perf_counter() + 0.2

    async def one(n: int) -> None:
        due = start + n / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        headers, body = requests[n]
        method = "GET" if body is None else "POST"
        async with session.request(method, url, data=body, headers=headers) as answer:
            found = await answer.json()
        timings.latencies.append((time.perf_counter() - due) * 1000)
        timings.server.append(float(answer.headers["server-timing"].partition("dur=")[2]))
        if answer.status != 200 or (body is not None and not found.get("allowed")):
            timings.refused += 1

    await asyncio.gather(*(one(n) for n in range(len(requests))))
    return timings


async def measure(
    base: str, pid: int, agents: dict[int, int], rate: float, seconds: float
) -> tuple[Timings, Timings]:
    """The same open loop against `/readyz` (one database round trip: the machine's own noise), then
    against the gate."""
    count = int(rate * seconds)
    users = sorted(agents)
    requests: list[tuple[dict[str, str], bytes | None]] = [
        (
            {"authorization": f"Bearer {token(users[n % len(users)])}", "content-type": "application/json"},
            json.dumps({"agent_id": agents[users[n % len(users)]]}).encode(),
        )
        for n in range(count)
    ]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        # Warm the connections first, and the server's: each of its pooled database connections
        # prepares the gate's statements on first use (WARM_UP authorizations, counted in the check).
        await asyncio.gather(*(session.get(f"{base}/healthz") for _ in range(16)))

        async def warm(headers: dict[str, str], body: bytes | None) -> None:
            async with session.post(f"{base}/api/calls/authorize", data=body, headers=headers) as answer:
                assert answer.status == 200, await answer.text()

        for _ in range(WARM_UP // 10):
            await asyncio.gather(*(warm(headers, body) for headers, body in requests[:10]))
        baseline = await open_loop(session, f"{base}/readyz", [({}, None)] * count, rate)
        cpu = cpu_seconds(pid)
        gate = await open_loop(session, f"{base}/api/calls/authorize", requests, rate)
        gate.cpu_ms = (cpu_seconds(pid) - cpu) * 1000 / count
    return baseline, gate


def line(timings: Timings) -> str:
    client, server = timings.latencies, timings.server
    return (
        f"p50 {percentile(client, 50):.1f} ms, p99 {percentile(client, 99):.1f} ms, "
        f"max {max(client):.1f} ms; in the service (Server-Timing) p50 {percentile(server, 50):.1f} ms, "
        f"p99 {percentile(server, 99):.1f} ms"
    )


async def run(args: argparse.Namespace, database_url: str) -> None:
    import subprocess

    subprocess.run([sys.executable, "-m", "callmeter", "migrate"], env=service_env(database_url), check=True)
    process = serve(database_url, PORT, "--workers", "1")
    base = f"http://127.0.0.1:{PORT}"
    try:
        agents = await prepare(base, args.users)
        baseline, gate = await measure(base, process.pid, agents, args.rate, args.seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    conn = await asyncpg.connect(database_url)
    try:
        held = await conn.fetchval("SELECT count(*) FROM call_authorizations")
    finally:
        await conn.close()
    assert gate.refused == 0 and baseline.refused == 0, f"{gate.refused} requests refused or failed"
    assert held == len(gate.latencies) + WARM_UP, (held, len(gate.latencies))
    print(
        f"{len(gate.latencies):,} authorizations at {args.rate:.0f}/s for {args.seconds:.0f} s, "
        f"{args.users} customers; {held:,} slots held, one per request ({WARM_UP} before the clock)\n"
        f"  the gate:            {line(gate)}   (target p99 < 10 ms)\n"
        f"                       {gate.cpu_ms:.2f} ms of the service's CPU an authorization\n"
        f"  /readyz, same loop:  {line(baseline)}"
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
