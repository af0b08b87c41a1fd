"""Group commit (db/group_commit.py) on both databases: a batch records exactly what the same
callbacks record one by one, a failing callback fails only itself, and batches really form."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import func, select

from callmeter.billing.plans import pay_as_you_go
from callmeter.call_lifecycle import StatusCallback
from callmeter.db import recording
from callmeter.db.group_commit import GroupCommit
from callmeter.db.recording import record_status_callback
from callmeter.db.tables import call_usage, monthly_usage, webhook_events
from callmeter.months import UTC_CALENDAR
from tests.factories import add_agent, call_events, open_db, post_callback, start_server

DEFAULT = pay_as_you_go(Decimal("0.05"))
T0 = datetime(2026, 3, 31, 23, 58, tzinfo=UTC)  # near a month's end: some calls move month
SEQUENTIAL, BATCHED = "+18440000001", "+18440000002"  # user 1's agent, user 2's


@pytest.fixture
async def db(clean_database):
    await add_agent(clean_database, user_id=1, name="one", numbers=[SEQUENTIAL])
    await add_agent(clean_database, user_id=2, name="two", numbers=[BATCHED])
    opened = await open_db(clean_database)
    yield opened
    await opened.disconnect()


def _callbacks(seed: int, number: str, prefix: str) -> list[StatusCallback]:
    """Eight calls' callbacks, shuffled, with repeats, a stray number and calls never answered."""
    rng = random.Random(seed)
    items = []
    for n in range(8):
        sid, start = f"{prefix}{n}", T0 + timedelta(seconds=rng.randint(0, 200))
        answered, duration = rng.random() < 0.8, rng.randint(1, 400)
        to = "+19990000000" if n == 7 else number  # call 7 matches no agent
        steps = [("initiated", 0, 0, None), ("ringing", 1, 2, None)]
        if answered:
            steps += [("in-progress", 2, 5, None), ("completed", 3, 5 + duration, duration)]
        else:
            steps += [(rng.choice(["busy", "no-answer", "canceled"]), 2, 30, 0)]
        for status, seq, offset, dur in steps:
            at = start + timedelta(seconds=offset)
            items.append(StatusCallback(sid, status, seq, at, "+15550001111", to, "inbound", "AC1", dur))
    items += rng.sample(items, 6)  # Twilio retries
    rng.shuffle(items)
    return items


async def _state(db, user_id: int | None, prefix: str):
    async with db.connection() as conn:
        calls = await conn.fetch_all(
            select(call_usage).where(call_usage.c.call_sid.like(f"{prefix}%")).order_by(call_usage.c.call_sid)
        )
        months = await conn.fetch_all(
            select(monthly_usage).where(monthly_usage.c.user_id == user_id).order_by(monthly_usage.c.month)
        )
        stored = await conn.fetch_all(
            select(webhook_events.c.call_sid, webhook_events.c.call_status, webhook_events.c.user_id)
            .where(webhook_events.c.call_sid.like(f"{prefix}%"))
            .order_by(webhook_events.c.call_sid, webhook_events.c.call_status)
        )
    keep = ("status", "twilio_status", "duration_seconds", "billable_seconds", "cost_usd", "month")
    keep += ("started_at", "ended_at", "first_event_at", "sort_at")
    return (
        [(row["call_sid"][1:], *(row[name] for name in keep)) for row in calls],
        [(row["month"], row["total_calls"], row["total_seconds"], row["usage_charge_usd"]) for row in months],
        [(row["call_sid"][1:], row["call_status"], row["user_id"] is not None) for row in stored],
    )


def _record(group: GroupCommit, item: StatusCallback):
    plan, calendar = DEFAULT, UTC_CALENDAR
    return group.record(event=item, form={}, agent_id=None, default_plan=plan, default_calendar=calendar)


def _call(sid: str, status: str, sequence: int, to: str, duration: int | None = None) -> StatusCallback:
    return StatusCallback(sid, status, sequence, T0, "+15550001111", to, "inbound", "AC1", duration)


def _summary(outcome):
    return (outcome.stored, outcome.attributed, outcome.change, outcome.call and outcome.call.cost_usd)


class _Bus:
    """The live bus's side of recording, kept: what each path would announce, by user."""

    def __init__(self) -> None:
        self.announced: dict[int, list[tuple[str, str]]] = {1: [], 2: []}

    def _keep(self, event) -> None:
        self.announced[event.user_id].append((str(event.kind), str(event.month)))

    async def announce(self, conn, event) -> None:
        self._keep(event)

    async def announce_many(self, conn, events) -> None:
        for event in events:
            self._keep(event)

    def committed(self, event) -> None:
        pass


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_records_what_the_same_callbacks_record_one_by_one(db, seed):
    one_by_one, together = _callbacks(seed, SEQUENTIAL, "S"), _callbacks(seed, BATCHED, "B")
    alone, bus = [], _Bus()
    for item in one_by_one:
        alone.append(
            await record_status_callback(
                db,
                event=item,
                form={},
                agent_id=None,
                default_plan=DEFAULT,
                default_calendar=UTC_CALENDAR,
                bus=bus,
            )
        )
    group = GroupCommit(db, bus, lanes=1)
    batched = await asyncio.gather(*(_record(group, item) for item in together))
    assert (group.batches, group.batched, group.retried) == (1, len(together), 0)  # one transaction
    assert [_summary(o) for o in batched] == [_summary(o) for o in alone]
    sequential, grouped = await _state(db, 1, "S"), await _state(db, 2, "B")
    assert grouped == sequential
    # the same changes announced (a batch announces in its own order: compare as multisets)
    assert sorted(bus.announced[2]) == sorted(bus.announced[1]) and bus.announced[1]
    assert sum(month[1] for month in grouped[1]) >= 4  # the test covers completed calls


async def test_a_failing_callback_fails_alone_and_its_neighbours_are_recorded(db, monkeypatch):
    real = recording.record_in

    async def record_in(conn, *, event, **kwargs):
        if event.call_sid == "CAboom":
            raise RuntimeError("boom")
        return await real(conn, event=event, **kwargs)

    monkeypatch.setattr("callmeter.db.group_commit.record_in", record_in)
    monkeypatch.setattr("callmeter.db.recording.record_in", record_in)
    group = GroupCommit(db, None, lanes=1)
    items = [
        StatusCallback(f"CA{n}", "completed", 3, T0, "+15550001111", BATCHED, "inbound", "AC1", 60)
        for n in range(5)
    ]
    items.insert(
        2, StatusCallback("CAboom", "completed", 3, T0, "+15550001111", BATCHED, "inbound", "AC1", 9)
    )
    results = await asyncio.gather(
        *(_record(group, item) for item in items),
        return_exceptions=True,
    )
    assert isinstance(results[2], RuntimeError)
    assert all(r.stored and r.call.cost_usd == Decimal("0.05") for i, r in enumerate(results) if i != 2)
    assert (group.batches, group.retried) == (0, 1)  # rolled back whole, then one by one
    calls, months, stored = await _state(db, 2, "CA")
    assert [c[0] for c in calls] == ["A0", "A1", "A2", "A3", "A4"] and months[0][1:3] == (5, 300)
    assert len(stored) == 5  # nothing of the failed callback was kept


async def test_a_repeat_of_an_event_stored_unattributed_creates_no_call_in_a_batch(db, clean_database):
    stray = _call("CAlate", "ringing", 1, "+18440000009")
    first = await record_status_callback(
        db, event=stray, form={}, agent_id=None, default_plan=DEFAULT, default_calendar=UTC_CALENDAR
    )
    assert (first.stored, first.attributed) == (True, False)
    await add_agent(clean_database, user_id=3, name="three", numbers=["+18440000009"])
    answered = _call("CAlate", "in-progress", 2, "+18440000009")
    group = GroupCommit(db, None, lanes=1)
    again, later = await asyncio.gather(*(_record(group, item) for item in (stray, answered)))
    assert (again.stored, again.attributed) == (False, True)  # as one by one: stored before
    assert later.stored and later.call is not None and later.call.user_id == 3
    # SQLite, where events are stored one at a time, finds it after creating the call: it retries
    assert group.retried == (1 if db.is_sqlite else 0)


async def test_lanes_record_two_customers_side_by_side_exactly(db):
    """`CALLBACK_LANES` 4: two agents' calls in lanes of their own, batches in the database at once."""
    mixed = _callbacks(5, SEQUENTIAL, "S") + _callbacks(5, BATCHED, "B")
    random.Random(9).shuffle(mixed)
    group = GroupCommit(db, None, lanes=4)
    for chunk in (mixed[: len(mixed) // 2], mixed[len(mixed) // 2 :]):
        await asyncio.gather(*(_record(group, item) for item in chunk))
    assert group.retried == 0 and group.batched == len(mixed)
    assert group.batches >= (2 if db.is_sqlite else 4)  # SQLite has one lane
    (s_calls, s_months, s_events), (b_calls, b_months, b_events) = (
        await _state(db, 1, "S"),
        await _state(db, 2, "B"),
    )
    # The two customers' events interleave differently, so compare what does not depend on order:
    # each call's outcome and length, the months' totals and charges, the events stored.
    assert [call[:5] for call in s_calls] == [call[:5] for call in b_calls]
    assert (s_months, s_events) == (b_months, b_events) and s_months


async def test_two_processes_batching_the_same_calls_count_each_once(clean_database, tmp_path):
    """Two `serve` processes (one with 2 lanes) get every callback of 40 calls of 4 agents, each
    callback sent to both, all at once: their batches lock the same calls and customers."""
    if clean_database.startswith("sqlite"):
        pytest.skip("SQLite is one process by design")
    numbers = [f"+1844555000{n}" for n in range(4)]
    for n, number in enumerate(numbers):
        await add_agent(clean_database, user_id=1 + n % 2, name=f"agent {n}", numbers=[number])
    rng = random.Random(4)
    durations = {f"CA2p{n:02d}": rng.randint(1, 600) for n in range(40)}
    forms = [
        form
        for n, (sid, duration) in enumerate(durations.items())
        for form in call_events(
            sid, answered_at=T0 + timedelta(minutes=n), duration=duration, to=numbers[n % 4]
        )
    ]
    servers = [
        start_server(clean_database, tmp_path),
        start_server(clean_database, tmp_path, CALLBACK_LANES="2"),
    ]
    try:
        sends = [(server, form) for form in forms for server in servers]
        rng.shuffle(sends)
        async with httpx.AsyncClient(timeout=60) as client:
            answers = await asyncio.gather(*(post_callback(client, s.base_url, form) for s, form in sends))
        assert {answer.status_code for answer in answers} == {200}
    finally:
        for server in servers:
            server.stop()
    db = await open_db(clean_database)
    try:
        async with db.connection() as conn:
            months = await conn.fetch_all(select(monthly_usage).order_by(monthly_usage.c.user_id))
            calls = await conn.fetch_all(select(call_usage))
            stored = await conn.fetch_val(select(func.count()).select_from(webhook_events))
    finally:
        await db.disconnect()
    assert stored == len(forms)
    assert sorted((c["call_sid"], c["duration_seconds"], c["status"]) for c in calls) == sorted(
        (sid, duration, "completed") for sid, duration in durations.items()
    )
    assert {m["month"] for m in months} == {"2026-03", "2026-04"}  # the calls straddle a month's end
    for month in months:
        own = [c for c in calls if (c["user_id"], c["month"]) == (month["user_id"], month["month"])]
        assert month["total_calls"] == len(own)
        assert month["total_seconds"] == sum(c["duration_seconds"] for c in own)
        assert Decimal(month["usage_charge_usd"]) == sum(Decimal(c["cost_usd"]) for c in own)
    assert sum(m["total_calls"] for m in months) == 40


async def test_a_late_event_that_only_revises_the_start_announces_nothing(db):
    bus = _Bus()
    group = GroupCommit(db, bus, lanes=1)
    ringing = StatusCallback(
        "CArev", "ringing", 1, T0 + timedelta(seconds=2), "+1555", BATCHED, "inbound", "AC1", None
    )
    initiated = StatusCallback("CArev", "initiated", 0, T0, "+1555", BATCHED, "inbound", "AC1", None)
    await _record(group, ringing)
    late = await _record(group, initiated)  # a batch of its own: the call's row is locked, stored
    assert late.stored and late.change is None
    assert [kind for kind, _ in bus.announced[2]] == ["UPDATED"]  # the ringing only
    async with db.connection() as conn:
        first = await conn.fetch_val(
            select(call_usage.c.first_event_at).where(call_usage.c.call_sid == "CArev")
        )
    assert first == T0  # the revision is stored
