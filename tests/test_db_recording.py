"""The write path called directly on both databases: outcomes, exactly-once under concurrency, re-rating."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from callmeter.billing.plans import Plan, PlanKind, Tier, pay_as_you_go
from callmeter.call_lifecycle import CallEventKind, StatusCallback
from callmeter.db import plans, usage
from callmeter.db.recording import record_status_callback
from callmeter.db.rerating import rerate_months
from callmeter.months import UTC_CALENDAR, Month
from tests.factories import add_agent, open_db

DEFAULT = pay_as_you_go(Decimal("0.05"))
T0 = datetime(2026, 3, 5, 12, tzinfo=UTC)


def event(
    sid: str,
    status: str,
    sequence: int,
    *,
    at: datetime = T0,
    duration: int | None = None,
    to: str = "+18449263376",
) -> StatusCallback:
    return StatusCallback(sid, status, sequence, at, "+15550001111", to, "inbound", "AC1", duration)


@pytest.fixture
async def db(clean_database):
    """The backend's database with agent 1 of user 1 on +18449263376, opened for the test."""
    await add_agent(clean_database, user_id=1, name="juana", numbers=["+18449263376"])
    opened = await open_db(clean_database)
    yield opened
    await opened.disconnect()


async def record(db, item: StatusCallback, agent_id: int | None = None):
    return await record_status_callback(
        db,
        event=item,
        form={"CallSid": item.call_sid},
        agent_id=agent_id,
        default_plan=DEFAULT,
        default_calendar=UTC_CALENDAR,
    )


async def test_outcomes_of_new_duplicate_late_and_unattributed_events(db):
    started = await record(db, event("CA1", "in-progress", 2))
    assert (started.stored, started.attributed, started.change) == (True, True, CallEventKind.STARTED)
    assert (await record(db, event("CA1", "in-progress", 2))).stored is False
    ended = await record(db, event("CA1", "completed", 3, at=T0 + timedelta(seconds=90), duration=90))
    assert ended.change is CallEventKind.ENDED and ended.call.cost_usd == Decimal("0.08")
    assert ended.month_usage.total_calls == 1 and ended.month_usage.usage_charge_usd == Decimal("0.08")
    late = await record(db, event("CA1", "ringing", 1))
    assert (late.stored, late.call, late.change) == (True, None, None)
    stray = await record(db, event("CA2", "ringing", 1, to="+19999999999"))
    assert (stray.stored, stray.attributed) == (True, False)


async def test_concurrent_final_events_count_the_call_once(db):
    finals = [
        event(f"CA{n}", "completed", seq, at=T0 + timedelta(minutes=n), duration=60 + seq)
        for n in range(10)
        for seq in (3, 4, 5)
    ]  # three different final events per call
    await asyncio.gather(*(record(db, item) for item in finals))
    async with db.connection() as conn:
        month = await usage.fetch_month(conn, user_id=1, month=Month(2026, 3))
    assert month.total_calls == 10
    assert month.total_seconds in range(10 * 63, 10 * 65 + 1)


async def test_rerating_a_month_keeps_costs_summing_to_the_new_charge(db):
    for n, minutes in enumerate((400, 300, 1500)):
        await record(db, event(f"CA{n}", "completed", 3, at=T0 + timedelta(hours=n), duration=minutes * 60))
    graduated = Plan(
        "Tiered",
        PlanKind.GRADUATED,
        tiers=(Tier(500, Decimal("0.06")), Tier(2000, Decimal("0.04")), Tier(None, Decimal("0.02"))),
    )
    async with db.transaction() as conn:
        stored = await plans.insert_plan(conn, plan=graduated)
        await plans.assign_plan(conn, user_id=1, plan_id=stored.id, from_month=Month(2026, 3))
        (month,) = await rerate_months(conn, user_id=1, from_month=Month(2026, 1), default_plan=DEFAULT)
    # 500 min at 0.06 + 1500 at 0.04 + 200 at 0.02 = 30 + 60 + 4
    assert month.usage_charge_usd == Decimal("94.00") and month.billable_seconds == 2200 * 60
