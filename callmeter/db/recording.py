"""Recording a Twilio status callback: the write path, in the caller's transaction.

lock the call's row (or create it, locked) -> dedupe the raw event -> advance the call's state
(monotonic) -> on the first transition into `completed`, rate the call by its month's plan and add it
to `monthly_usage`. A repeated or late event is stored once and changes nothing else, so a call adds
to its month exactly once. A new call's first callback also bills the usage events that came before
it (db/meters.py: one indexed lookup, usually finding none).

`record_in` does it inside a transaction that may hold a whole batch (db/group_commit.py), reading
what the batch locked and stored at its start (db/batch.py) instead of asking again;
`record_status_callback` records one callback in a transaction of its own (a batch retried one by
one, reconciliation). Every statement is `Prepared` (compiled once).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from callmeter.billing.plans import Plan
from callmeter.billing.rating import CallCharge
from callmeter.billing.usage import MonthTotals
from callmeter.call_lifecycle import (
    CallEventKind,
    CallStatus,
    StatusCallback,
)
from callmeter.db import events, meters
from callmeter.db.authorizations import release_slot
from callmeter.db.batch import BatchLocks
from callmeter.db.bus import LiveBus
from callmeter.db.call_rows import (
    LOCK_CALL,
    UPDATE_CALL,
    Advance,
    calendar_of,
    call_update,
    create_call,
    find_owner,
    plan_advance,
    stored_charge,
)
from callmeter.db.charging import rate_into_month
from callmeter.db.connection import Connection, Database
from callmeter.db.live import LiveEvent
from callmeter.db.meters import Billed
from callmeter.db.outbox import enqueue_call_event
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
        row = await LOCK_CALL.fetch_one(conn, call_sid=event.call_sid)
        found = None if row is not None else await find_owner(conn, event=event, agent_id=agent_id)
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
        calendar = await calendar_of(conn, row["user_id"], row["timezones"], default_calendar)
    elif found is not None:
        calendar = await calendar_of(conn, found.user_id, found.timezones, default_calendar)
        row, created = await create_call(conn, event=event, owner=found, calendar=calendar)
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


async def _advance_call(
    conn: Connection,
    *,
    row: Mapping[str, Any],
    event: StatusCallback,
    default_plan: Plan,
    calendar: Calendar,
) -> RecordOutcome:
    advance = plan_advance(row, event, calendar)
    if advance.after == advance.before:
        return RecordOutcome(stored=True, attributed=True)
    charge, position, totals, metered = stored_charge(row), row["month_position"], None, None
    if advance.moves_month(row):  # its billed usage events, if any, move with it
        metered = await meters.call_moved(
            conn,
            user_id=row["user_id"],
            call_id=row["id"],
            from_month=Month.stored(row["month"]),
            to_month=advance.month,
            default_plan=default_plan,
        )
    if advance.completes:
        charge, totals = await rate_into_month(
            conn,
            user_id=row["user_id"],
            call_id=row["id"],
            month=advance.month,
            duration=advance.after.duration_seconds,
            default_plan=default_plan,
        )
        position = totals.total_calls
    await UPDATE_CALL.execute(conn, **call_update(row, event, advance, charge, position))
    return advanced(row, advance, charge, totals=totals, metered=metered)


def advanced(
    row: Mapping[str, Any],
    advance: Advance,
    charge: CallCharge,
    *,
    totals: MonthTotals | None = None,
    metered: Billed | None = None,
) -> RecordOutcome:
    after = advance.after
    call = RecordedCall(
        row["id"],
        row["user_id"],
        after.status,
        after.twilio_status,
        after.duration_seconds,
        charge.cost,
        advance.month,
    )
    return RecordOutcome(
        stored=True, attributed=True, call=call, change=advance.change, month_usage=totals, metered=metered
    )
