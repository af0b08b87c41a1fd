"""A storm of signed Twilio callbacks, the ledger of which ones the service acknowledged, and the check
that the database holds every event exactly once (its figures go to test-artifacts/ for RELIABILITY.md)."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import httpx

from callmeter.db.connection import Database
from tests.factories import auth, call_events, direct_of, post_callback

NUMBER = "+18449263376"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@dataclass
class Storm:
    calls: int
    seed: int = 1
    durations: dict[str, int] = field(default_factory=dict)
    events: list[dict[str, str]] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)  # indexes of events that got a 2xx
    refused: dict[int, int] = field(default_factory=dict)  # status -> count of 5xx answers (500s apart)
    failures: int = 0  # connection errors (the service was down)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        start = datetime(2026, 6, 1, 8, tzinfo=UTC)
        for index in range(self.calls):
            sid = f"CA{self.seed:08x}{index:024x}"
            self.durations[sid] = rng.randint(1, 1200)
            self.events += call_events(
                sid, answered_at=start + timedelta(minutes=index), duration=self.durations[sid]
            )
        order = list(range(len(self.events)))
        rng.shuffle(order)
        self.events = [self.events[i] for i in order]

    @property
    def total_seconds(self) -> int:
        return sum(self.durations.values())

    def expected_charge(self) -> Decimal:
        return (Decimal("0.05") * self.total_seconds / 60).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)

    def pending(self) -> list[int]:
        return [index for index in range(len(self.events)) if index not in self.acked]

    async def send(
        self, base_url: str, indexes: list[int], *, concurrency: int = 12, stop: asyncio.Event | None = None
    ) -> None:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in indexes:
            queue.put_nowait(index)

        async def worker(client: httpx.AsyncClient) -> None:
            while not queue.empty() and not (stop and stop.is_set()):
                index = queue.get_nowait()
                try:
                    response = await post_callback(client, base_url, self.events[index])
                except httpx.HTTPError:
                    self.failures += 1
                    continue
                if 200 <= response.status_code < 300:
                    self.acked.add(index)
                else:
                    assert response.status_code >= 500, response.text
                    self.refused[response.status_code] = self.refused.get(response.status_code, 0) + 1

        async with httpx.AsyncClient(timeout=10) as client:
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))


async def stored_event_keys(database_url: str) -> list[tuple[str, int, str]]:
    db = Database(database_url, min_size=1, max_size=1, direct_url=direct_of(database_url))
    await db.connect()
    try:
        async with db.connection() as conn:
            rows = await conn.fetch_all("SELECT call_sid, sequence_number, call_status FROM webhook_events")
        return [(row[0], row[1], row[2]) for row in rows]
    finally:
        await db.disconnect()


async def check_exact(storm: Storm, base_url: str, database_url: str, name: str) -> dict[str, int]:
    stored = await stored_event_keys(database_url)
    keys = [(event["CallSid"], int(event["SequenceNumber"]), event["CallStatus"]) for event in storm.events]
    assert len(stored) == len(set(stored)) == len(keys), "every event stored exactly once"
    assert set(stored) == set(keys)
    async with httpx.AsyncClient(base_url=base_url) as client:
        usage = (await client.get("/api/usage/history?month=2026-06", headers=auth(1))).json()
    assert usage["total_calls"] == storm.calls
    assert usage["total_cost_usd"] == float(storm.expected_charge())
    figures = {
        "calls": storm.calls,
        "events_sent": len(keys),
        "acknowledged": len(storm.acked),
        "stored": len(stored),
        "lost": len(set(keys) - set(stored)),
        "answers_500": storm.refused.get(500, 0),
        "answers_503": storm.refused.get(503, 0),
        "connection_failures": storm.failures,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"reliability-{name}.json").write_text(json.dumps(figures, indent=2))
    return figures
