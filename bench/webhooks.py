"""Outgoing webhook delivery: throughput of one `serve` worker, and the lag from commit to send.

    .venv/bin/python bench/webhooks.py [--backlog 5000] [--rate 300] [--seconds 10] [--users 500]

1. Backlog: `--backlog` events (and their deliveries) for `--users` customers are committed before
   `serve` starts; the figure is how fast one worker sends them all to a local receiver.
2. Lag: with `serve` running, events are committed one per transaction at `--rate` per second for
   `--seconds`; the figure is the time from each COMMIT returning to the receiver reading the request
   (p50, p99, max). Targets (issue 15): 500 events/s, p99 < 1 s.

The receiver runs in this process on raw asyncio (keep-alive HTTP/1.1, a 200 at once) so it costs
little; events are written with asyncpg the way the outbox writes them (same tables and columns).
Afterwards every delivery must be `succeeded` with one attempt, and each event received once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import JWT_SECRET, create_database, drop_database, serve, service_env  # noqa: E402
from callmeter.notifications import EventType, event_body, new_event_id  # noqa: E402
from callmeter.sealing import seal  # noqa: E402


class Receiver:
    """Every webhook-id with the time its request was read."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(
                    line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line
                )
                lowered = {key.lower(): value for key, value in headers.items()}
                await reader.readexactly(int(lowered.get("content-length", "0")))
                event_id = lowered["webhook-id"]
                if event_id in self.arrivals:
                    self.duplicates += 1
                self.arrivals.setdefault(event_id, time.time())
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def write_events(conn: asyncpg.Connection, endpoint_id: int, users: list[int]) -> list[str]:
    """One event per user given, with its delivery, in the caller's transaction."""
    now = datetime.now(UTC)
    ids = []
    for user in users:
        event_id = new_event_id()
        body = event_body(event_id=event_id, type=EventType.CALL_COMPLETED, user_id=user, data={}, at=now)
        outbox_id = await conn.fetchval(
            "INSERT INTO outbox_events (event_id, type, user_id, body, created_at) "
            "VALUES ($1, $2, $3, $4, $5) RETURNING id",
            event_id,
            "call.completed",
            user,
            body,
            now,
        )
        await conn.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, outbox_id, user_id, status, attempts, "
            "next_attempt_at, created_at) VALUES ($1, $2, $3, 'pending', 0, $4, $4)",
            endpoint_id,
            outbox_id,
            user,
            now,
        )
        ids.append(event_id)
    return ids


async def wait_all(receiver: Receiver, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(event_id in receiver.arrivals for event_id in ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {sum(i in receiver.arrivals for i in ids)} of {len(ids)} arrived")
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace, database_url: str) -> None:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    subprocess.run([sys.executable, "-m", "callmeter", "migrate"], env=service_env(database_url), check=True)
    conn = await asyncpg.connect(database_url)
    endpoint_id = await conn.fetchval(
        "INSERT INTO webhook_endpoints (url, events, secret, disabled, created_at) "
        "VALUES ($1, ',call.completed,', $2, false, now()) RETURNING id",
        f"http://127.0.0.1:{port}/hooks",
        seal(JWT_SECRET, "whsec_" + "A" * 32),
    )
    users = [1 + n % args.users for n in range(args.backlog)]
    async with conn.transaction():
        backlog = await write_events(conn, endpoint_id, users)
    log = Path("/tmp") / f"bench-webhooks-{port}.log"
    settings = {"WEBHOOKS_ALLOW_HTTP": "true", "RECONCILE_INTERVAL_SECONDS": "0"}
    process = serve(database_url, port + 1, log=log, env=settings)
    try:
        started = time.time()
        await wait_all(receiver, backlog, timeout=300)
        arrivals = [receiver.arrivals[event_id] for event_id in backlog]
        took = max(arrivals) - min(arrivals)
        print(
            f"backlog: {len(backlog)} events for {args.users} customers in {took:.2f} s "
            f"= {len(backlog) / took:,.0f} events/s (first after {min(arrivals) - started:.2f} s)"
        )

        committed: dict[str, float] = {}
        interval = 1 / args.rate
        next_at = time.monotonic()
        for n in range(int(args.rate * args.seconds)):
            next_at += interval
            async with conn.transaction():
                (event_id,) = await write_events(conn, endpoint_id, [1 + n % args.users])
            committed[event_id] = time.time()
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await wait_all(receiver, list(committed), timeout=60)
        lags = sorted(receiver.arrivals[event_id] - at for event_id, at in committed.items())
        p99 = lags[int(len(lags) * 0.99) - 1]
        print(
            f"lag at {args.rate}/s for {args.seconds} s ({len(lags)} events): "
            f"p50 {statistics.median(lags) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
            f"max {lags[-1] * 1000:.0f} ms"
        )
        await asyncio.sleep(1)  # the last round records its answers
        states = await conn.fetch(
            "SELECT status, attempts, count(*) AS n FROM webhook_deliveries GROUP BY 1, 2"
        )
        print(
            "deliveries:",
            json.dumps({f"{r['status']}/{r['attempts']}": r["n"] for r in states}),
            f"duplicates received: {receiver.duplicates}",
        )
    finally:
        process.terminate()
        process.wait()
        await conn.close()
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backlog", type=int, default=5000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    database_url = create_database("bench_webhooks")
    try:
        asyncio.run(run(args, database_url))
    finally:
        drop_database(database_url)


if __name__ == "__main__":
    main()
