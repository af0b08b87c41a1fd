"""Benchmark: N concurrent `activeCalls` subscribers on one `callmeter serve` process (PostgreSQL).

Measures, for each signed callback that starts a call, the time from the callback's 200 to each
subscriber's frame that shows the call (p50, p99), and the server's resident memory per subscriber.
Subscribers run in separate processes (`--clients`), so the server is what is measured.

    python bench/subscriptions.py --subscribers 1000 --events 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import jwt  # noqa: E402
import websockets  # noqa: E402
from twilio.request_validator import RequestValidator  # noqa: E402

from bench.common import (  # noqa: E402
    JWT_SECRET,
    TWILIO_TOKEN,
    cpu_seconds,
    create_database,
    drop_database,
    percentile,
    rss_kib,
    serve,
    service_env,
    summary,
)

NUMBER = "+18449263376"
SID = re.compile(r"CA[0-9a-f]{32}")
QUERY = "subscription { activeCalls { callSid startedAt agent { name } } }"


async def subscriber_group(url: str, count: int, ready, stop, results) -> None:
    token = jwt.encode({"sub": "1", "exp": datetime.now(UTC) + timedelta(hours=1)}, JWT_SECRET)
    seen: list[dict[str, float]] = []

    async def one() -> None:
        first_seen: dict[str, float] = {}
        async with websockets.connect(
            url, subprotocols=["graphql-transport-ws"], open_timeout=60, max_queue=None
        ) as ws:
            await ws.send(
                json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
            )
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}}))
            json.loads(await ws.recv())  # the initial list
            connected.append(1)
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                now = time.time()
                if '"ping"' in raw:
                    await ws.send('{"type":"pong"}')
                    continue
                # A regular expression instead of a JSON parse keeps the client's CPU per frame low.
                for sid in SID.findall(raw):
                    first_seen.setdefault(sid, now)
        seen.append(first_seen)

    connected: list[int] = []
    tasks = []
    for _ in range(count):
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(0.002)
    while len(connected) < count:
        await asyncio.sleep(0.05)
    ready.set()
    await asyncio.gather(*tasks)
    results.put(seen)


def run_group(url: str, count: int, ready, stop, results) -> None:
    asyncio.run(subscriber_group(url, count, ready, stop, results))


def callback(call_sid: str, at: datetime, status: str = "in-progress") -> dict[str, str]:
    form = {
        "CallSid": call_sid,
        "CallStatus": status,
        "SequenceNumber": "2" if status == "in-progress" else "3",
        "AccountSid": "AC" + "0" * 32,
        "From": "+15550001111",
        "To": NUMBER,
        "Direction": "inbound",
        "Timestamp": format_datetime(at),
    }
    if status == "completed":
        form["CallDuration"] = "60"
    return form


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--clients", type=int, default=2, help="subscriber processes")
    parser.add_argument("--port", type=int, default=8711)
    parser.add_argument("--verbose", action="store_true", help="latency of each call start")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between call starts")
    parser.add_argument("--profile", help="write a py-spy profile of the server (speedscope JSON) here")
    args = parser.parse_args()

    database_url = create_database("callmeter_bench_subs")
    subprocess.run(
        [sys.executable, "-m", "callmeter", "migrate"],
        env=service_env(database_url),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "callmeter",
            "agent",
            "add",
            "--user",
            "1",
            "--name",
            "bench",
            "--number",
            NUMBER,
        ],
        env=service_env(database_url),
        check=True,
        capture_output=True,
    )
    server = serve(database_url, args.port, log=Path("/tmp/subs-server.log"))
    try:
        time.sleep(1)
        rss_before = rss_kib(server.pid)
        ctx = multiprocessing.get_context("spawn")
        stop, results = ctx.Event(), ctx.Queue()
        groups = []
        share = args.subscribers // args.clients
        for index in range(args.clients):
            ready = ctx.Event()
            count = share + (args.subscribers - share * args.clients if index == 0 else 0)
            process = ctx.Process(
                target=run_group, args=(f"ws://127.0.0.1:{args.port}/graphql", count, ready, stop, results)
            )
            process.start()
            groups.append((process, ready))
        for _, ready in groups:
            ready.wait(timeout=300)
        time.sleep(2)
        rss_after = rss_kib(server.pid)
        if args.profile:
            profiler = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "-o",
                    args.profile,
                    "-f",
                    "speedscope",
                    "-d",
                    str(args.events // 2 + 3),
                    "-p",
                    str(server.pid),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        idle_cpu = cpu_seconds(server.pid)
        time.sleep(3)
        idle_cpu = (cpu_seconds(server.pid) - idle_cpu) / 3
        validator = RequestValidator(TWILIO_TOKEN)
        server_cpu = cpu_seconds(server.pid)
        client_cpu = sum(cpu_seconds(process.pid) for process, _ in groups)
        url = f"http://127.0.0.1:{args.port}/webhooks/twilio/status"
        acked: dict[str, float] = {}
        with httpx.Client() as client:

            def send(form: dict[str, str]) -> None:
                response = client.post(
                    url,
                    content=urlencode(form),
                    headers={
                        "X-Twilio-Signature": validator.compute_signature(url, form),
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                )
                assert response.status_code == 200, response.text

            # A call starts every interval and, once five are live, the oldest ends: each start and
            # each end is a change every subscriber receives.
            for index in range(args.events):
                sid = f"CA{index:032x}"
                send(callback(sid, datetime.now(UTC)))
                acked[sid] = time.time()
                if index >= 5:
                    send(callback(f"CA{index - 5:032x}", datetime.now(UTC), "completed"))
                time.sleep(args.interval)
        time.sleep(2)
        server_cpu = cpu_seconds(server.pid) - server_cpu
        client_cpu = sum(cpu_seconds(process.pid) for process, _ in groups) - client_cpu
        stop.set()
        if args.profile:
            profiler.wait(timeout=60)
        latencies: list[float] = []
        per_event: dict[str, list[float]] = {sid: [] for sid in acked}
        missing = 0
        for _ in groups:
            for first_seen in results.get(timeout=120):
                for sid, at in acked.items():
                    if sid in first_seen:
                        latencies.append((first_seen[sid] - at) * 1000)
                        per_event[sid].append((first_seen[sid] - at) * 1000)
                    else:
                        missing += 1
        if args.verbose:
            for index, values in enumerate(per_event.values()):
                print(
                    f"  call {index:2d}: p50 {percentile(values, 50):6.1f} ms, "
                    f"max {max(values or [0]):6.1f} ms"
                )
        for process, _ in groups:
            process.join(timeout=30)
        per_subscriber = (rss_after - rss_before) / args.subscribers
        print(f"subscribers: {args.subscribers} in {args.clients} client processes; events: {args.events}")
        print(f"callback 200 -> subscriber frame: {summary(latencies)}")
        print(f"frames missing: {missing}")
        changes = args.events + max(0, args.events - 5)
        print(f"server CPU with subscribers connected and no changes: {idle_cpu * 100:.0f}% of a core")
        print(
            f"server CPU: {server_cpu / changes * 1000:.0f} ms per change ({changes} changes); "
            f"subscriber processes: {client_cpu / changes * 1000:.0f} ms per change"
        )
        print(
            f"server RSS: {rss_before / 1024:.1f} MiB idle, {rss_after / 1024:.1f} MiB with subscribers "
            f"-> {per_subscriber:.1f} KiB per subscriber"
        )
        print(
            f"targets: p99 < 100 ms -> {'met' if percentile(latencies, 99) < 100 else 'NOT met'}; "
            f"< 50 KB per subscriber -> {'met' if per_subscriber * 1.024 < 50 else 'NOT met'}"
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
        drop_database(database_url)


if __name__ == "__main__":
    main()
