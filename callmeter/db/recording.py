"""Recording one Twilio status callback: the whole write path, in one transaction.

lock the call's row (or create it, locked) -> dedupe the raw event -> advance the call's state
(monotonic) -> on the first transition into `completed`, rate the call by its month's plan and add it
to `monthly_usage` -> NOTIFY. A repeated or late event is stored once and changes nothing else, so a
call adds to its month exactly once. A new call's first callback also bills the usage events that
came before it (db/meters.py: one indexed lookup, usually finding none).

Every statement is `Prepared` (compiled once); a typical event is six round trips: BEGIN, the locking
SELECT, the event INSERT, the call UPDATE, NOTIFY, COMMIT (bench/README.md has the figures).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert

from callmeter.billing.plans import Plan
from callmeter.billing.rating import CallCharge
from callmeter.billing.usage import MonthTotals
from callmeter.call_lifecycle import (
    CREATED,
    CallEventKind,
    CallState,
    CallStatus,
    StatusCallback,
    apply_event,
)
from callmeter.db import events, meters
from callmeter.db.agents import AgentOwner, find_agent_owner
from callmeter.db.authorizations import release_slot
from callmeter.db.batch import BatchLocks
from callmeter.db.bus import LiveBus
from callmeter.db.charging import rate_into_month
from callmeter.db.connection import Connection, Database
from callmeter.db.customers import ensure_customer, stored_calendar
from callmeter.db.live import LiveEvent
from callmeter.db.meters import Billed
from callmeter.db.outbox import enqueue_call_event
from callmeter.db.prepared import Prepared
from callmeter.db.tables import call_usage, customers
from callmeter.db.types import to_decimal, to_utc
from callmeter.months import Calendar, Month
from callmeter.notifications import EventType


@dataclass(frozen=True)
class RecordedCall:
    """The call as an event left it."""

    id: int
    user_id: int
    status: CallStatus
    twilio_status: str
    duration_seconds: int
    cost_usd: Decimal
    month: Month


@dataclass(frozen=True)
class RecordOutcome:
    stored: bool  # False: this exact event was recorded before
    attributed: bool  # False: it matched no agent and waits for an admin
    call: RecordedCall | None = None  # set when the event changed the call
    change: CallEventKind | None = None
    month_usage: MonthTotals | None = None  # set when a completed call was counted
    metered: Billed | None = None  # set when the call's usage events moved to its new month


# The call's row, locked until the transaction ends: concurrent events of one call take turns;
# with its customer's billing calendar (NULL: a customer not seen yet).
_LOCK_CALL = Prepared(
    select(call_usage, customers.c.timezones)
    .outerjoin(customers, customers.c.user_id == call_usage.c.user_id)
    .where(call_usage.c.call_sid == bindparam("call_sid"))
    .with_for_update(of=call_usage)
)
_CREATE_CALL = Prepared(
    insert(call_usage).on_conflict_do_nothing(index_elements=["call_sid"]).returning(*call_usage.c),
    columns=(
        "call_sid",
        "user_id",
        "agent_id",
        "call_from",
        "call_to",
        "direction",
        "account_sid",
        "twilio_status",
        "status",
        "duration_seconds",
        "billable_seconds",
        "cost_usd",
        "first_event_at",
        "sort_at",
        "month",
        "updated_at",
    ),
)
_UPDATE_CALL = Prepared(
    call_usage.update().where(call_usage.c.id == bindparam("key_id")),
    columns=(
        "twilio_status",
        "status",
        "first_event_at",
        "started_at",
        "ended_at",
        "duration_seconds",
        "sort_at",
        "month",
        "updated_at",
        "call_from",
        "call_to",
        "direction",
        "billable_seconds",
        "cost_usd",
        "month_position",
    ),
)


async def record_status_callback(
    db: Database,
    *,
    event: StatusCallback,
    form: Mapping[str, str],
    agent_id: int | None,
    default_plan: Plan,
    default_calendar: Calendar,
    bus: LiveBus | None = None,
    authorization_id: str | None = None,
) -> RecordOutcome:
    """Record one callback in a transaction of its own; a customer seen for the first time gets
    `default_calendar`. The call's first callback (or one naming its `authorization_id`) frees the
    slot the gate held for it. (db/group_commit.py records many in one transaction.)"""
    try:
        async with db.transaction() as conn:
            recorded = await record_in(
                conn,
                event=event,
                form=form,
                agent_id=agent_id,
                default_plan=default_plan,
                default_calendar=default_calendar,
                authorization_id=authorization_id,
            )
            if bus is not None and recorded.announced is not None:
                await bus.announce(conn, recorded.announced)
    except DuplicateOfUnattributed:
        return RecordOutcome(stored=False, attributed=True)
    if bus is not None and recorded.announced is not None:
        bus.committed(recorded.announced)
    return recorded.outcome


@dataclass(frozen=True)
class Recorded:
    outcome: RecordOutcome
    announced: LiveEvent | None  # the change to announce once the transaction commits


class DuplicateOfUnattributed(Exception):
    """The event was stored before, when it matched no agent: the call `record_in` created for it
    must be rolled back with the transaction (it creates no call now)."""


async def record_in(
    conn: Connection,
    *,
    event: StatusCallback,
    form: Mapping[str, str],
    agent_id: int | None,
    default_plan: Plan,
    default_calendar: Calendar,
    authorization_id: str | None = None,
    batch: BatchLocks | None = None,
) -> Recorded:
    """Record one callback in the caller's transaction. `batch`: what the transaction locked and
    stored for a batch this callback is part of (db/batch.py), read instead of asking."""
    now = datetime.now(UTC)
    locked = batch.take_call(event.call_sid) if batch is not None else None
    if locked is not None:
        row, found = locked.row, locked.owner
    else:
        # Locks in one order, the call's row then the event's key, so concurrent events of one
        # call queue up instead of deadlocking.
        row = await _LOCK_CALL.fetch_one(conn, call_sid=event.call_sid)
        found = None if row is not None else await _find_owner(conn, event=event, agent_id=agent_id)
    owner = (
        (row["agent_id"], row["user_id"]) if row is not None else found and (found.agent_id, found.user_id)
    )
    event_id = None
    if batch is not None:
        event_id = batch.take_event_id(event)
        if event_id is None:  # stored before (when it matched no agent, it creates no call now)
            return Recorded(RecordOutcome(stored=False, attributed=owner is not None), None)
    created = False
    if row is not None:
        calendar = await _calendar(conn, row["user_id"], row["timezones"], default_calendar)
    elif found is not None:
        calendar = await _calendar(conn, found.user_id, found.timezones, default_calendar)
        row, created = await _create_call(conn, event=event, owner=found, calendar=calendar)
    if batch is None:
        event_id = await events.insert_event(
            conn, event=event, form=form, user_id=owner and owner[1], agent_id=owner and owner[0]
        )
        if event_id is None:
            if created:
                raise DuplicateOfUnattributed
            return Recorded(RecordOutcome(stored=False, attributed=owner is not None), None)
    if owner is None or row is None:
        return Recorded(RecordOutcome(stored=True, attributed=False), None)
    if batch is None and (created or authorization_id is not None):  # a batch frees them at its start
        await release_slot(conn, call_sid=event.call_sid, authorization_id=authorization_id, now=now)
    outcome = await _advance_call(conn, row=row, event=event, default_plan=default_plan, calendar=calendar)
    metered = None
    # usage events that came before the call's first callback are billed now
    if created and (batch is None or (owner[1], event.call_sid) in batch.waited_for):
        month = outcome.call.month if outcome.call else Month.stored(row["month"])
        metered = await meters.attach_waiting(
            conn,
            user_id=owner[1],
            call_id=row["id"],
            call_sid=event.call_sid,
            month=month,
            default_plan=default_plan,
        )
    if outcome.month_usage is not None and outcome.call is not None:  # it completed now
        await enqueue_call_event(
            conn, type=EventType.CALL_COMPLETED, user_id=owner[1], call_id=outcome.call.id, now=now
        )
    if outcome.call is None or outcome.change is None:
        return Recorded(outcome, None)
    changed_month = outcome.month_usage.month if outcome.month_usage else None
    if outcome.metered is not None or (created and metered is not None):
        changed_month = outcome.call.month
    announced = LiveEvent(
        user_id=outcome.call.user_id,
        call_id=outcome.call.id,
        kind=outcome.change,
        month=changed_month,
        event_id=event_id,
    )
    return Recorded(outcome, announced)


async def _calendar(conn: Connection, user_id: int, stored: str | None, default: Calendar) -> Calendar:
    """The customer's billing calendar; a customer seen for the first time is given `default`."""
    if stored is not None:
        return stored_calendar(stored)
    return (await ensure_customer(conn, user_id=user_id, calendar=default)).calendar


async def _find_owner(conn: Connection, *, event: StatusCallback, agent_id: int | None) -> AgentOwner | None:
    """The owner of a new call: the agent the callback names, else the one on its number."""
    if agent_id is not None:
        return await find_agent_owner(conn, agent_id=agent_id)
    number = event.call_from if event.is_outbound else event.call_to
    return await find_agent_owner(conn, number=number)


async def _create_call(
    conn: Connection, *, event: StatusCallback, owner: AgentOwner, calendar: Calendar
) -> tuple[Mapping[str, Any], bool]:
    """Create the call at its first event; a concurrent first event of the same call just waits."""
    row = await _CREATE_CALL.fetch_one(
        conn,
        call_sid=event.call_sid,
        user_id=owner.user_id,
        agent_id=owner.agent_id,
        call_from=event.call_from,
        call_to=event.call_to,
        direction=event.direction,
        account_sid=event.account_sid,
        twilio_status=CREATED,
        status=CallStatus.ACTIVE,
        duration_seconds=0,
        billable_seconds=0,
        cost_usd=Decimal(0),
        first_event_at=event.timestamp,
        sort_at=event.timestamp,
        month=str(calendar.month_of(event.timestamp)),
        updated_at=datetime.now(UTC),
    )
    if row is not None:
        return row, True
    # Another transaction created it first; its row is ours once that one commits.
    return await _LOCK_CALL.fetch_one(conn, call_sid=event.call_sid), False


async def _advance_call(
    conn: Connection,
    *,
    row: Mapping[str, Any],
    event: StatusCallback,
    default_plan: Plan,
    calendar: Calendar,
) -> RecordOutcome:
    before = CallState(
        twilio_status=row["twilio_status"],
        status=CallStatus(row["status"]),
        first_event_at=_utc(row["first_event_at"]),
        started_at=_utc(row["started_at"]),
        ended_at=_utc(row["ended_at"]),
        duration_seconds=row["duration_seconds"],
    )
    after, change = apply_event(before, event, calendar)
    if after == before:
        return RecordOutcome(stored=True, attributed=True)
    month = calendar.month_of(after.sort_at)
    charge = CallCharge(row["billable_seconds"], to_decimal(row["cost_usd"]))
    position, totals, metered = row["month_position"], None, None
    if str(month) != row["month"]:  # its billed usage events, if any, move with it
        metered = await meters.call_moved(
            conn,
            user_id=row["user_id"],
            call_id=row["id"],
            from_month=Month.stored(row["month"]),
            to_month=month,
            default_plan=default_plan,
        )
    if change is CallEventKind.ENDED and after.status is CallStatus.COMPLETED:
        charge, totals = await rate_into_month(
            conn,
            user_id=row["user_id"],
            call_id=row["id"],
            month=month,
            duration=after.duration_seconds,
            default_plan=default_plan,
        )
        position = totals.total_calls
    await _UPDATE_CALL.execute(
        conn,
        key_id=row["id"],
        twilio_status=after.twilio_status,
        status=after.status,
        first_event_at=after.first_event_at,
        started_at=after.started_at,
        ended_at=after.ended_at,
        duration_seconds=after.duration_seconds,
        sort_at=after.sort_at,
        month=str(month),
        updated_at=datetime.now(UTC),
        call_from=row["call_from"] or event.call_from,
        call_to=row["call_to"] or event.call_to,
        direction=row["direction"] or event.direction,
        billable_seconds=charge.billable_seconds,
        cost_usd=charge.cost,
        month_position=position,
    )
    call = RecordedCall(
        row["id"],
        row["user_id"],
        after.status,
        after.twilio_status,
        after.duration_seconds,
        charge.cost,
        month,
    )
    return RecordOutcome(
        stored=True, attributed=True, call=call, change=change, month_usage=totals, metered=metered
    )


def _utc(value: object) -> datetime | None:
    return None if value is None else to_utc(value)
