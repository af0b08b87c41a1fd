"""Benchmark: signed Twilio status callbacks through `callmeter serve` on PostgreSQL, against raw asyncpg.

First the HTTP ceiling: the same closed loop against bench/bare.py (a bare Starlette route that
parses the form and checks the signature, no database), twice; then for each server configuration
(`--workers 1,2`), `--rounds` times:
1. raw: the database work of the one-callback-per-transaction path (the statements
   `db/recording.py` ran per event before group commit: same transactions, locks, NOTIFY) done
   directly with asyncpg in one process with the service's pool size (`--skip-raw` leaves it out);
2. closed loop: `--connections` keep-alive connections send whole calls (4 events each, in order) as
   fast as the service answers them: the most it ingests, with its latency at that load.
Ingest is reported as the ratio of the medians (and per round), and as a share of the ceiling
(issue 18's target: ≥ 50% with one worker); then an open loop at half the median
throughput gives p50/p99 latency counted from when each request was due.

The load generator and the raw run are separate processes (`spawn`); the generator encodes and signs
every request before its clock starts. After every run the stored totals are checked to the cent.

    python bench/ingest.py --calls 3000 --workers 1,2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import socket
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from bench.common import (  # noqa: E402
    TWILIO_TOKEN,
    cpu_seconds,
    create_database,
    drop_database,
    percentile,
    postgres_cpu_seconds,
    serve,
    summary,
)
from bench.loadgen import closed_loop, encode_request, open_loop  # noqa: E402
from tests.factories import call_events  # noqa: E402

PATH = "/webhooks/twilio/status"
PRICE_PER_MINUTE = Decimal("0.05")  # bench.common.service_env's


def number_of(user: int) -> str:
    return f"+1844{user:07d}"


def plan_calls(calls: int, users: int, seed: int = 7) -> list[tuple[str, int, int, float]]:
    """(call sid, user, duration seconds, answered at as a UNIX time) for each call, this month."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max(60.0, (now - month_start).total_seconds() - 7200)
    return [
        (
            f"CA{rng.getrandbits(128):032x}",
            1 + i % users,
            rng.randint(1, 900),
            (month_start + timedelta(seconds=30 + rng.random() * span)).timestamp(),
        )
        for i in range(calls)
    ]


def call_forms(sid: str, user: int, duration: int, answered: float) -> list[dict[str, str]]:
    """Twilio's four callbacks of an answered call, as the tests send them."""
    at = datetime.fromtimestamp(answered, UTC)
    return call_events(sid, answered_at=at, duration=duration, to=number_of(user))


# -- the load generator process -------------------------------------------------------------------


def generate(port: int, calls: list, mode: str, connections: int, rate: float, out) -> None:
    url = f"http://127.0.0.1:{port}{PATH}"
    validator = RequestValidator(TWILIO_TOKEN)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    sequences = []
    for call in calls:
        sequence = []
        for form in call_forms(*call):
            signed = {**headers, "X-Twilio-Signature": validator.compute_signature(url, form)}
            sequence.append(encode_request(f"127.0.0.1:{port}", PATH, urlencode(form).encode(), signed))
        sequences.append(sequence)
    if mode == "closed":
        result = asyncio.run(closed_loop("127.0.0.1", port, sequences, connections))
    else:
        # Calls in flight overlap as in a busy hour: event k of call i goes out after event k of call i-1.
        window = 64
        flat = [
            sequences[i][k]
            for first in range(0, len(sequences), window)
            for k in range(4)
            for i in range(first, min(first + window, len(sequences)))
        ]
        result = asyncio.run(open_loop("127.0.0.1", port, flat, rate, connections))
    out.send((result.seconds, result.latencies_ms, result.statuses, result.cpu_seconds))


def run_generator(port: int, calls: list, mode: str, connections: int, rate: float = 0) -> dict:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=generate, args=(port, calls, mode, connections, rate, send))
    process.start()
    seconds, latencies, statuses, cpu = receive.recv()
    process.join()
    return {"seconds": seconds, "latencies": latencies, "statuses": statuses, "cpu": cpu}


# -- the raw asyncpg process: the same statements per event, no HTTP, no framework ----------------

CALL_COLUMNS = (
    "id, call_sid, user_id, agent_id, call_from, call_to, direction, twilio_status, status, "
    "duration_seconds, billable_seconds, cost_usd, first_event_at, started_at, ended_at, sort_at, month"
)


async def raw_event(conn: asyncpg.Connection, form: dict[str, str]) -> None:
    from callmeter.call_lifecycle import CREATED, CallEventKind, CallState, CallStatus, apply_event
    from callmeter.months import UTC_CALENDAR
    from callmeter.webhooks.parsing import parse_status_callback

    event = parse_status_callback(form, received_at=datetime.now(UTC))
    now = datetime.now(UTC)
    async with conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {CALL_COLUMNS} FROM call_usage WHERE call_sid = $1 FOR UPDATE", event.call_sid
        )
        owner = (row["agent_id"], row["user_id"]) if row else None
        if row is None:
            owner = await conn.fetchrow(
                "SELECT agents.id, agents.user_id FROM agents JOIN agent_numbers "
                "ON agent_numbers.agent_id = agents.id WHERE agent_numbers.number = $1",
                event.call_to,
            )
        event_id = await conn.fetchval(
            "INSERT INTO webhook_events (call_sid, sequence_number, call_status, event_at, received_at, "
            "user_id, agent_id, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (call_sid, sequence_number, call_status) DO NOTHING RETURNING id",
            event.call_sid,
            event.sequence_number,
            event.call_status,
            event.timestamp,
            now,
            owner[1],
            owner[0],
            json.dumps(form, separators=(",", ":")),
        )
        if event_id is None:
            return
        if row is None:
            row = await conn.fetchrow(
                "INSERT INTO call_usage (call_sid, user_id, agent_id, call_from, call_to, direction, "
                "account_sid, twilio_status, status, duration_seconds, billable_seconds, cost_usd, "
                "first_event_at, sort_at, month, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                "'active', 0, 0, 0, $9, $9, $10, $11) ON CONFLICT (call_sid) DO NOTHING "
                f"RETURNING {CALL_COLUMNS}",
                event.call_sid,
                owner[1],
                owner[0],
                event.call_from,
                event.call_to,
                event.direction,
                event.account_sid,
                CREATED,
                event.timestamp,
                event.timestamp.strftime("%Y-%m"),
                now,
            )
        before = CallState(
            row["twilio_status"],
            CallStatus(row["status"]),
            row["first_event_at"],
            row["started_at"],
            row["ended_at"],
            row["duration_seconds"],
        )
        after, change = apply_event(before, event, UTC_CALENDAR)
        if after == before:
            return
        month = after.sort_at.strftime("%Y-%m")
        cost, billable, position = Decimal(0), 0, None
        if change is CallEventKind.ENDED and after.status is CallStatus.COMPLETED:
            user = owner[1]
            await conn.execute("SELECT pg_advisory_xact_lock($1)", user)
            await conn.fetchrow(
                "SELECT plans.* FROM plans JOIN plan_assignments ON plan_assignments.plan_id = plans.id "
                "WHERE plan_assignments.user_id = $1 AND plan_assignments.from_month <= $2 "
                "ORDER BY plan_assignments.from_month DESC LIMIT 1",
                user,
                month,
            )
            billable = after.duration_seconds
            totals = await conn.fetchrow(
                "INSERT INTO monthly_usage (user_id, month, total_calls, total_seconds, billable_seconds, "
                "usage_charge_usd, updated_at) VALUES ($1, $2, 1, $3, $3, 0, $4) "
                "ON CONFLICT (user_id, month) DO UPDATE SET total_calls = monthly_usage.total_calls + 1, "
                "total_seconds = monthly_usage.total_seconds + $3, "
                "billable_seconds = monthly_usage.billable_seconds + $3, updated_at = $4 "
                "RETURNING total_calls, billable_seconds, usage_charge_usd",
                user,
                month,
                billable,
                now,
            )
            charge = (PRICE_PER_MINUTE * totals["billable_seconds"] / 60).quantize(
                Decimal("0.01"), ROUND_HALF_UP
            )
            cost = charge - totals["usage_charge_usd"]
            position = totals["total_calls"]
            await conn.execute(
                "UPDATE monthly_usage SET usage_charge_usd = $3 WHERE user_id = $1 AND month = $2",
                user,
                month,
                charge,
            )
        await conn.execute(
            "UPDATE call_usage SET twilio_status = $2, status = $3, first_event_at = $4, started_at = $5, "
            "ended_at = $6, duration_seconds = $7, sort_at = $8, month = $9, updated_at = $10, "
            "billable_seconds = $11, cost_usd = $12, month_position = $13 WHERE id = $1",
            row["id"],
            after.twilio_status,
            str(after.status),
            after.first_event_at,
            after.started_at,
            after.ended_at,
            after.duration_seconds,
            after.sort_at,
            month,
            now,
            billable,
            cost,
            position,
        )
        payload = json.dumps(
            {"user_id": owner[1], "call_id": row["id"], "kind": str(change), "event_id": event_id}
        )
        await conn.execute("SELECT pg_notify('callmeter_live', $1)", payload)


def raw(database_url: str, calls: list, connections: int, pool_size: int, out) -> None:
    async def run() -> tuple[float, list[float]]:
        pool = await asyncpg.create_pool(database_url, min_size=pool_size, max_size=pool_size)
        pending = iter(calls)
        latencies: list[float] = []

        async def worker() -> None:
            for call in pending:
                for form in call_forms(*call):
                    started = time.perf_counter()
                    async with pool.acquire() as conn:
                        await raw_event(conn, form)
                    latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
        await pool.close()
        return elapsed, latencies

    cpu = time.process_time()
    seconds, latencies = asyncio.run(run())
    out.send((seconds, latencies, {200: len(latencies)}, time.process_time() - cpu))


def run_raw(database_url: str, calls: list, connections: int, pool_size: int) -> dict:
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=raw, args=(database_url, calls, connections, pool_size, send))
    process.start()
    seconds, latencies, statuses, cpu = receive.recv()
    process.join()
    return {"seconds": seconds, "latencies": latencies, "statuses": statuses, "cpu": cpu}


# -- the database: agents, reset between runs, totals checked to the cent -------------------------


async def seed_agents(database_url: str, users: int) -> None:
    conn = await asyncpg.connect(database_url)
    now = datetime.now(UTC)
    for user in range(1, users + 1):
        agent = await conn.fetchval(
            "INSERT INTO agents (user_id, name, created_at) VALUES ($1, $2, $3) RETURNING id",
            user,
            f"agent {user}",
            now,
        )
        await conn.execute(
            "INSERT INTO agent_numbers (number, agent_id) VALUES ($1, $2)", number_of(user), agent
        )
    await conn.close()


async def reset(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    await conn.execute("TRUNCATE call_usage, webhook_events, monthly_usage CASCADE")
    await conn.execute("VACUUM ANALYZE")
    await conn.execute("CHECKPOINT")  # each run starts without a backlog of dirty pages to flush
    await conn.close()


async def check_totals(database_url: str, calls: list) -> str:
    """The stored usage against what the calls add up to, per user, to the cent."""
    expected: dict[int, list[int]] = {}
    for _, user, duration, _ in calls:
        entry = expected.setdefault(user, [0, 0])
        entry[0] += 1
        entry[1] += duration
    conn = await asyncpg.connect(database_url)
    months = await conn.fetch(
        "SELECT user_id, sum(total_calls) AS calls, sum(total_seconds) AS seconds, "
        "sum(usage_charge_usd) AS charge FROM monthly_usage GROUP BY user_id"
    )
    costs = dict(
        await conn.fetch(
            "SELECT user_id, sum(cost_usd) FROM call_usage WHERE status = 'completed' GROUP BY 1"
        )
    )
    events = await conn.fetchval("SELECT count(*) FROM webhook_events")
    await conn.close()
    got = {row["user_id"]: [row["calls"], row["seconds"]] for row in months}
    assert got == expected, "stored call counts or seconds differ from the calls sent"
    for row in months:
        charge = (PRICE_PER_MINUTE * row["seconds"] / 60).quantize(Decimal("0.01"), ROUND_HALF_UP)
        assert row["charge"] == charge == costs[row["user_id"]], (row, charge, costs[row["user_id"]])
    assert events == 4 * len(calls), events
    return f"exact: {len(calls)} calls, {sum(e[1] for e in expected.values())} s, {events} events"


def report(label: str, run: dict, events: int) -> float:
    throughput = events / run["seconds"]
    print(
        f"  {label}: {throughput:,.0f} events/s over {run['seconds']:.1f} s; "
        f"latency {summary(run['latencies'])}"
        f"; statuses {run['statuses']}; generator CPU {1e6 * run['cpu'] / events:.0f} µs/event"
    )
    return throughput


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3000, help="calls per run (4 events each)")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--connections", type=int, default=32, help="concurrent senders")
    parser.add_argument("--workers", default="1,2", help="`callmeter serve --workers` values to try")
    parser.add_argument("--pool", type=int, default=10, help="raw run's pool size (the service's default)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="raw and service runs alternated this many times (medians)"
    )
    parser.add_argument("--skip-raw", action="store_true")
    parser.add_argument("--server-log", type=Path, help="the server's output (its warnings), to this file")
    parser.add_argument(
        "--profile", help="py-spy the (1-worker) server during the closed loop: speedscope file"
    )
    args = parser.parse_args()

    url = create_database("bench_ingest")
    calls = plan_calls(args.calls, args.users)
    events = 4 * len(calls)
    print(f"{len(calls)} calls, {events} signed callbacks, {args.users} users, {os.cpu_count()} cores")
    try:
        from callmeter.db.migrate import migrate

        migrate(url)
        asyncio.run(seed_agents(url, args.users))
        ceiling = bare_ceiling(calls, args.connections, events)
        for workers in [int(w) for w in args.workers.split(",")]:
            port = 18700 + workers
            process = serve(url, port, "--workers", str(workers), log=args.server_log)
            try:
                print(f"callmeter serve --workers {workers}, {args.rounds} rounds:")
                raws, served = [], []
                for round_ in range(1, args.rounds + 1):
                    # The raw limit moves with the database's state (checkpoints, caches): each service
                    # run is compared with a raw run just before it, and the medians with each other.
                    if not args.skip_raw:
                        asyncio.run(reset(url))
                        raw = run_raw(url, calls, args.connections, args.pool)
                        raws.append(report(f"round {round_}, raw asyncpg (pool {args.pool})", raw, events))
                        print("    " + asyncio.run(check_totals(url, calls)))
                    asyncio.run(reset(url))
                    profile = args.profile if workers == 1 and round_ == 1 else None
                    cpu, before = cpu_seconds(process.pid), batching(port)
                    database_cpu = postgres_cpu_seconds()
                    closed = closed_loop_run(process.pid, port, calls, args.connections, profile)
                    served.append(report(f"round {round_}, service closed loop", closed, events))
                    if workers == 1:
                        spent = cpu_seconds(process.pid) - cpu
                        database_spent = postgres_cpu_seconds() - database_cpu
                        batches, batched, retried = (
                            b - a for a, b in zip(before, batching(port), strict=True)
                        )
                        print(
                            f"    server CPU {1e6 * spent / events:.0f} µs/event, PostgreSQL "
                            f"{1e6 * database_spent / events:.0f} µs/event; {batches:,.0f} batches, "
                            f"{batched / max(batches, 1):.1f} callbacks each; {retried:.0f} retried alone"
                        )
                    print("    " + asyncio.run(check_totals(url, calls)))
                    if raws:
                        print(f"    = {served[-1] / raws[-1]:.0%} of the raw run before it")
                throughput = statistics.median(served)
                print(
                    f"  median: service {throughput:,.0f} events/s = {throughput / ceiling:.0%} of the bare "
                    f"HTTP + signature ceiling ({ceiling:,.0f}/s; target ≥ 50% with 1 worker)"
                )
                if raws:
                    raw_median = statistics.median(raws)
                    print(
                        f"  median: service {throughput:,.0f} events/s, raw {raw_median:,.0f} events/s "
                        f"= {throughput / raw_median:.0%} of raw asyncpg "
                        f"(rounds: {', '.join(f'{s / r:.0%}' for s, r in zip(served, raws, strict=True))})"
                    )
                asyncio.run(reset(url))
                rate = throughput / 2
                opened = run_generator(port, calls, "open", 64, rate)
                report(f"open loop at {rate:,.0f}/s (half the median closed loop)", opened, events)
                print(
                    f"  open loop p99 {percentile(opened['latencies'], 99):.1f} ms "
                    f"(target < 50 ms); " + asyncio.run(check_totals(url, calls))
                )
            finally:
                process.terminate()
                process.wait()
    finally:
        drop_database(url)


def bare_ceiling(calls: list, connections: int, events: int) -> float:
    """The closed loop against bench/bare.py (HTTP, form, signature; no database): events/s."""
    import subprocess

    port = 18800
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.bare:app", "--port", str(port), "--no-access-log"]
        + ["--log-level", "warning"],
        env={**os.environ, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN},
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        found = [
            report("bare HTTP + signature ceiling", run_generator(port, calls, "closed", connections), events)
        ]
        found.append(
            report("bare HTTP + signature ceiling", run_generator(port, calls, "closed", connections), events)
        )
        return statistics.median(found)
    finally:
        process.terminate()
        process.wait()


def batching(port: int) -> tuple[float, float, float]:
    """The server's group-commit counters so far (/metrics): batches committed, callbacks in them,
    batches retried one by one."""
    import httpx

    values = {"committed": 0.0, "retried": 0.0, "sum": 0.0}
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if line.startswith("callmeter_callback_batches_total{"):
            values[line.split('"')[1]] = float(line.rsplit(" ", 1)[1])
        elif line.startswith("callmeter_callbacks_per_batch_sum "):
            values["sum"] = float(line.rsplit(" ", 1)[1])
    return values["committed"], values["sum"], values["retried"]


def closed_loop_run(pid: int, port: int, calls: list, connections: int, profile: str | None) -> dict:
    """The closed-loop run, under py-spy when `profile` names a speedscope file."""
    spy = None
    if profile:
        import subprocess

        spy = subprocess.Popen(
            [str(Path(sys.executable).with_name("py-spy")), "record", "-f", "speedscope"]
            + ["-o", profile, "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1)
    closed = run_generator(port, calls, "closed", connections)
    if spy is not None:
        spy.send_signal(2)
        spy.wait()
    return closed


if __name__ == "__main__":
    main()
