"""Prometheus metrics. Each process has its own registry: scrape every worker (or run one per host).

Counters and histograms are updated where things happen; gauges that describe state (active calls,
subscribers, the database pool) are read when `/metrics` is scraped.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callmeter.errors import DatabaseUnavailableError

REGISTRY = CollectorRegistry()
CALLBACKS = Counter(
    "callmeter_callbacks_total", "Twilio status callbacks by outcome.", ["outcome"], registry=REGISTRY
)
RECORDING_SECONDS = Histogram(
    "callmeter_callback_recording_seconds",
    "Time to record one callback (waiting for its batch, and the batch's transaction).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
CALLBACK_BATCHES = Counter(
    "callmeter_callback_batches_total",
    "Group-commit transactions of status callbacks: committed, or rolled back and retried one by one.",
    ["outcome"],
    registry=REGISTRY,
)
CALLBACKS_PER_BATCH = Histogram(
    "callmeter_callbacks_per_batch",
    "Status callbacks recorded by one group-commit transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)
ACTIVE_CALLS = Gauge("callmeter_active_calls", "Calls in progress (all users).", registry=REGISTRY)
SUBSCRIBERS = Gauge("callmeter_subscribers", "Live GraphQL subscriptions in this process.", registry=REGISTRY)
POOL_SIZE = Gauge("callmeter_db_pool_connections", "Database pool connections.", ["state"], registry=REGISTRY)


async def exposition(
    *, subscribers: int, pool: Mapping[str, int], active_calls: Callable[[], Awaitable[int]]
) -> Response:
    """`/metrics`: the gauges set from the process's state now, then every metric of the registry."""
    SUBSCRIBERS.set(subscribers)
    for name, value in pool.items():
        POOL_SIZE.labels(name).set(value)
    try:
        ACTIVE_CALLS.set(await active_calls())
    except DatabaseUnavailableError:
        pass  # the other figures are still worth scraping
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


class ServerTiming:
    """ASGI middleware: every HTTP response says how long the service took to start it.

    `Server-Timing: app;dur=1.234` (milliseconds, W3C Server Timing): browsers' developer tools show
    it, and it separates the service's own time from the network's (bench/reads.py reads it).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                message["headers"] = [*message.get("headers", ()), (b"server-timing", b"app;dur=%.3f" % took)]
            await send(message)

        await self.app(scope, receive, timed_send)
