"""Usage event ingest: events per second through `POST /api/usage/events` with one `serve` worker on
PostgreSQL, batched, with every total checked exactly afterwards.

    .venv/bin/python bench/meters.py [--events 100000] [--batch 500] [--clients 4] [--users 1]

Each customer is on a plan pricing two meters (llm_tokens per 1000, tts_characters each) and has
`--calls` completed calls the events name (so every event is billed into its call's month at once,
as in production when the agent reports after the call's first callback). `--clients` connections
post batches of `--batch` events, spread over the users; a tenth of the batches are sent twice (the
retries an agent makes). Target (issue 16): >= 20,000 events/s. Afterwards, from the database: each
meter's month quantity and charge equal the events sent (rate x quantity, rounded once), the events'
costs add up to it, and every customer's month total is minutes + meters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twilio.request_validator import RequestValidator  # noqa: E402

from bench.common import (
    TWILIO_TOKEN,
    cpu_seconds,
    create_database,
    drop_database,
    serve,
    service_env,
    token,
)  # noqa: E402
from callmeter.billing.meters import MeterRate, meter_charge  # noqa: E402

RATES = (
    MeterRate("llm_tokens", Decimal(1000), Decimal("0.002")),
    MeterRate("tts_characters", Decimal(1), Decimal("0.00003")),
)
PORT = 18431  # bench/ runs one at a time


def call_sid(user: int, n: int) -> str:
    return f"CA{user:06d}{n:026d}"


async def gql(client: httpx.AsyncClient, base: str, query: str) -> dict:
    admin = {"authorization": f"Bearer {token(1, admin=True)}"}
    body = (await client.post(f"{base}/graphql", json={"query": query}, headers=admin)).json()
    assert "errors" not in body, body
    return body["data"]


async def prepare(client: httpx.AsyncClient, base: str, users: int, calls: int) -> None:
    """A plan pricing the meters for every user, and their completed calls (signed callbacks)."""
    rates = ", ".join(
        f'{{meter: "{rate.meter}", unitSize: "{rate.unit_size}", ratePerUnit: "{rate.rate_per_unit}"}}'
        for rate in RATES
    )
    plan = await gql(
        client,
        base,
        f'mutation {{ createPlan(input: {{name: "ai", kind: PAY_AS_YOU_GO, ratePerMinute: "0.05", '
        f"meterRates: [{rates}]}}) {{ id }} }}",
    )
    month = datetime.now(UTC).strftime("%Y-%m")
    validator = RequestValidator(TWILIO_TOKEN)
    answered = datetime.now(UTC) - timedelta(minutes=30)
    for user in range(1, users + 1):
        plan_id = plan["createPlan"]["id"]
        await gql(
            client,
            base,
            f'mutation {{ assignPlan(userId: {user}, planId: "{plan_id}", fromMonth: "{month}") {{ id }} }}',
        )
        number = f"+1555{user:07d}"
        agent = await gql(
            client,
            base,
            f'mutation {{ createAgent(input: {{userId: {user}, name: "a{user}", '
            f'phoneNumbers: ["{number}"]}}) {{ id }} }}',
        )
        url = f"{base}/webhooks/twilio/status?agent_id={agent['createAgent']['id']}"
        for n in range(calls):
            for sequence, status in enumerate(("in-progress", "completed")):
                at = answered + timedelta(seconds=60 * sequence)
                form = {
                    "CallSid": call_sid(user, n),
                    "AccountSid": "AC" + "0" * 32,
                    "CallStatus": status,
                    "SequenceNumber": str(sequence),
                    "Timestamp": at.strftime("%a, %d %b %Y %H:%M:%S +0000"),
                    "From": "+15550001111",
                    "To": "+18449263376",
                    "Direction": "inbound",
                    "CallbackSource": "call-progress-events",
                }
                if status == "completed":
                    form["CallDuration"] = "60"
                headers = {
                    "content-type": "application/x-www-form-urlencoded",
                    "x-twilio-signature": validator.compute_signature(url, form),
                }
                response = await client.post(url, content=urlencode(form), headers=headers)
                assert response.status_code == 200, response.text


def make_batches(
    args: argparse.Namespace,
) -> tuple[list[tuple[int, list[dict]]], dict[tuple[int, str], Decimal]]:
    rng = random.Random(16)
    at = (datetime.now(UTC) - timedelta(minutes=20)).isoformat()
    expected: dict[tuple[int, str], Decimal] = {}
    batches = []
    for number in range(args.events // args.batch):
        user = number % args.users + 1
        events = []
        for k in range(args.batch):
            meter = RATES[k % 2].meter
            quantity = Decimal(rng.randint(1, 4000))
            expected[(user, meter)] = expected.get((user, meter), Decimal(0)) + quantity
            events.append(
                {
                    "idempotency_key": f"b{number}-{k}",
                    "call_sid": call_sid(user, rng.randrange(args.calls)),
                    "meter": meter,
                    "quantity": str(quantity),
                    "occurred_at": at,
                }
            )
        batches.append((user, events))
    retries = [batches[i] for i in range(0, len(batches), 10)]  # a tenth sent twice
    return batches + retries, expected


async def post_all(
    base: str, batches: list[tuple[int, list[dict]]], clients: int
) -> tuple[float, list[float], int, int]:
    """Post every batch over `clients` keep-alive connections (aiohttp, bodies encoded beforehand, so
    the load generator costs the shared cores little); (seconds, latencies in ms, accepted, retried)."""
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for user, events in batches:
        queue.put_nowait((user, json.dumps({"events": events}).encode()))
    latencies: list[float] = []
    totals = [0, 0]
    headers = {"authorization": f"Bearer {token(1, admin=True)}", "content-type": "application/json"}

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            user, body = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(
                f"{base}/api/usage/events?user_id={user}", data=body, headers=headers
            ) as answer:
                found = await answer.json()
                assert answer.status == 200, found
            latencies.append((time.perf_counter() - started) * 1000)
            totals[0] += found["accepted"]
            totals[1] += found["duplicates"]

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(clients)))
        seconds = time.perf_counter() - started
    return seconds, latencies, totals[0], totals[1]


async def check(database_url: str, expected: dict[tuple[int, str], Decimal], users: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for (user, meter), quantity in expected.items():
            row = await conn.fetchrow(
                "SELECT quantity, charge_usd FROM meter_usage WHERE user_id = $1 AND meter = $2", user, meter
            )
            costs = await conn.fetchval(
                "SELECT sum(cost_usd) FROM usage_events WHERE user_id = $1 AND meter = $2", user, meter
            )
            rate = next(rate for rate in RATES if rate.meter == meter)
            assert row["quantity"] == quantity, (user, meter, row["quantity"], quantity)
            assert row["charge_usd"] == meter_charge(rate, quantity) == costs, (user, meter, row, costs)
        for user in range(1, users + 1):
            month = await conn.fetchval("SELECT usage_charge_usd FROM monthly_usage WHERE user_id = $1", user)
            minutes = await conn.fetchval("SELECT sum(cost_usd) FROM call_usage WHERE user_id = $1", user)
            meters = await conn.fetchval("SELECT sum(charge_usd) FROM meter_usage WHERE user_id = $1", user)
            assert month == minutes + meters, (user, month, minutes, meters)
    finally:
        await conn.close()


async def run(args: argparse.Namespace, database_url: str) -> None:
    subprocess.run([sys.executable, "-m", "callmeter", "migrate"], env=service_env(database_url), check=True)
    process = serve(database_url, PORT, "--workers", "1")
    base = f"http://127.0.0.1:{PORT}"
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            await prepare(client, base, args.users, args.calls)
        batches, expected = make_batches(args)
        cpu_before = cpu_seconds(process.pid)
        seconds, latencies, accepted, duplicates = await post_all(base, batches, args.clients)
        cpu = cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(timeout=30)
    sent = sum(len(events) for _, events in batches)
    assert accepted == sum(
        expected_batch for expected_batch in [len(b[1]) for b in batches[: args.events // args.batch]]
    )
    assert duplicates == sent - accepted
    await check(database_url, expected, args.users)
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(
        f"{args.users} user(s), batches of {args.batch}, {args.clients} clients: {sent:,} events sent "
        f"({accepted:,} new, {duplicates:,} retried) in {seconds:.2f} s = {sent / seconds:,.0f} events/s; "
        f"request p50 {p50:.0f} ms, p99 {p99:.0f} ms; serve used {cpu:.2f} s of CPU "
        f"({cpu / sent * 1e6:.0f} µs an event); totals exact"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--calls", type=int, default=50, help="completed calls per user the events name")
    args = parser.parse_args()
    database_url = create_database("callmeter_bench_meters")
    try:
        asyncio.run(run(args, database_url))
    finally:
        drop_database(database_url)


if __name__ == "__main__":
    main()
