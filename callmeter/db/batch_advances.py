"""What a batch of callbacks decides from what it locked, before recording the rest one by one.

Most callbacks only move a call along: a new call's first callback creates it, the next ones
(ringing, answered) change its status. None of them rates the call or reads anything more, so a
batch (PostgreSQL) decides them all from the rows it locked (db/batch.py) and writes them with one
statement each: one INSERT for the new calls, one UPDATE for the calls it moved along. What is left
(a call completing, a call moving month, a call's second event in the batch, a new call usage
events wait for, a call another process created meanwhile) goes through `recording.record_in`,
after: each call's events keep their order, and calls are independent of each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from callmeter.billing.rating import CallCharge
from callmeter.db.batch import BatchLocks, Queued
from callmeter.db.call_rows import (
    CREATE_CALLS,
    UPDATE_CALL,
    Advance,
    call_update,
    new_call,
    plan_advance,
    state_columns,
    stored_charge,
)
from callmeter.db.connection import Connection
from callmeter.db.customers import stored_calendar
from callmeter.db.live import LiveEvent
from callmeter.db.recording import Recorded, RecordOutcome, advanced

_NO_CHARGE = CallCharge(0, Decimal(0))  # a call not completed yet


async def record_simple_advances(
    conn: Connection, batch: Sequence[Queued], locks: BatchLocks
) -> dict[int, Recorded]:
    """The callbacks decided here, by their position in `batch`."""
    done: dict[int, Recorded] = {}
    updates, creations, seen = [], [], set()
    for index, queued in enumerate(batch):
        event, sid = queued.event, queued.event.call_sid
        if sid in seen:
            continue  # a call's first event of the batch only: the row is as locked
        seen.add(sid)
        row, owner = locks.rows.get(sid), locks.owners.get(sid)
        if row is not None and row["timezones"] is not None:
            advance = plan_advance(row, event, stored_calendar(row["timezones"]))
            if advance.completes or advance.moves_month(row):
                continue
            locks.take_call(sid)
            event_id = locks.take_event_id(event)
            if event_id is None or advance.after == advance.before:  # stored before, or a late event
                done[index] = Recorded(RecordOutcome(stored=event_id is not None, attributed=True), None)
                continue
            charge = stored_charge(row)
            updates.append(call_update(row, event, advance, charge, row["month_position"]))
            done[index] = _moved(row, advance, charge, event_id)
        elif owner is not None and owner.timezones is not None and locks.stores(event):
            if (owner.user_id, sid) in locks.waited_for:
                continue  # it bills the usage events that waited for it
            calendar = stored_calendar(owner.timezones)
            created = new_call(event, owner, calendar)
            advance = plan_advance(created, event, calendar)
            if advance.completes:
                continue
            creations.append((index, queued, advance, {**created, **state_columns(advance)}))
    await UPDATE_CALL.execute_many(conn, updates)
    stored = {row["call_sid"]: row for row in await CREATE_CALLS.insert(conn, [c[3] for c in creations])}
    for index, queued, advance, _ in creations:
        row = stored.get(queued.event.call_sid)
        if row is None:
            continue  # another process created it meanwhile: recorded as one by one, after
        locks.take_call(queued.event.call_sid)
        event_id = locks.take_event_id(queued.event)
        assert event_id is not None
        if advance.after == advance.before:
            done[index] = Recorded(RecordOutcome(stored=True, attributed=True), None)
        else:
            done[index] = _moved(row, advance, _NO_CHARGE, event_id)
    return done


def _moved(row: Mapping[str, Any], advance: Advance, charge: CallCharge, event_id: int) -> Recorded:
    """The outcome, and the change to announce (none for a late event that only revised when the
    call began: as one by one)."""
    if advance.change is None:
        return Recorded(advanced(row, advance, charge), None)
    change = LiveEvent(row["user_id"], row["id"], advance.change, None, event_id)
    return Recorded(advanced(row, advance, charge), change)
