"""What a batch of callbacks locks and reads before its first event is recorded (PostgreSQL).

One statement for each, whatever the batch's size: lock the calls already stored (in order of
call SID), find the owners of the calls not stored yet, take the billing locks the batch will need
(in order of user id: the owners of new calls, whose first callback bills the usage events waiting
for them, and of calls that complete), find the new calls that usage events wait for, and store
the batch's events. Two batches (two lanes of this process, or other processes') then take their
locks in the same order and queue up instead of deadlocking. `recording.record_in` reads all this
instead of asking per event.

SQLite needs none of it: a write transaction has the database to itself, so each event asks for
its own (in-process, cheap).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, String, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY

from callmeter.call_lifecycle import StatusCallback
from callmeter.db.agents import AgentOwner
from callmeter.db.authorizations import release_slots
from callmeter.db.connection import Connection
from callmeter.db.customers import calendar_text, ensure_customer
from callmeter.db.locks import lock_users_billing
from callmeter.db.meter_tables import usage_events
from callmeter.db.prepared import Prepared, UnnestInsert
from callmeter.db.tables import agent_numbers, agents, call_usage, customers
from callmeter.db.watch import look_up_alerts
from callmeter.months import Calendar

EventKey = tuple[str, int, str]  # webhook_events' dedupe key: call SID, sequence number, status


def event_key(event: StatusCallback) -> EventKey:
    return (event.call_sid, -1 if event.sequence_number is None else event.sequence_number, event.call_status)


@dataclass(frozen=True)
class LockedCall:
    row: Mapping[str, Any] | None  # the call's row, locked; None: not stored yet
    owner: AgentOwner | None  # for a call not stored yet: its owner (None: it matches no agent)


class MixedOwners(Exception):
    """The callbacks of one new call name different owners: the batch is recorded one by one,
    where the call's first callback decides."""


@dataclass
class BatchLocks:
    rows: dict[str, Mapping[str, Any]]  # the stored calls' rows, locked, by SID
    owners: dict[str, AgentOwner]  # the owners of calls not stored yet, by SID
    waited_for: set[tuple[int, str]]  # (user, SID) of new calls that usage events wait for
    event_ids: dict[EventKey, int]  # the events this batch stored (the others were stored before)
    _used: set[str] = field(default_factory=set)

    def take_call(self, sid: str) -> LockedCall | None:
        """The call as locked at the start, for its first event of the batch; None for the next
        ones (an event before them may have changed or created the call: ask the database)."""
        if sid in self._used:
            return None
        self._used.add(sid)
        return LockedCall(self.rows.get(sid), self.owners.get(sid))

    def stores(self, event: StatusCallback) -> bool:
        """Whether the batch stored this event now (not before)."""
        return event_key(event) in self.event_ids

    def take_event_id(self, event: StatusCallback) -> int | None:
        """The stored event's id, for the first of the batch's events with its key (None for
        the others, and for an event stored before the batch)."""
        return self.event_ids.pop(event_key(event), None)


_LOCK_CALLS = Prepared(
    select(call_usage, customers.c.timezones)
    .outerjoin(customers, customers.c.user_id == call_usage.c.user_id)
    .where(call_usage.c.call_sid == func.any(bindparam("call_sids", type_=ARRAY(String))))
    .order_by(call_usage.c.call_sid)
    .with_for_update(of=call_usage)
)
_OWNER = select(
    agent_numbers.c.number, agents.c.id, agents.c.user_id, customers.c.timezones, agents.c.voice_url
).outerjoin(customers, customers.c.user_id == agents.c.user_id)
_OWNERS_BY_NUMBER = Prepared(
    _OWNER.join(agent_numbers, agent_numbers.c.agent_id == agents.c.id).where(
        agent_numbers.c.number == func.any(bindparam("numbers", type_=ARRAY(String)))
    )
)
_OWNERS_BY_ID = Prepared(
    _OWNER.outerjoin(agent_numbers, agent_numbers.c.agent_id == agents.c.id).where(
        agents.c.id == func.any(bindparam("ids", type_=ARRAY(BigInteger)))
    )
)
_WAITED_FOR = Prepared(
    select(usage_events.c.user_id, usage_events.c.call_sid)
    .where(
        usage_events.c.user_id == func.any(bindparam("user_ids", type_=ARRAY(BigInteger))),
        usage_events.c.call_sid == func.any(bindparam("call_sids", type_=ARRAY(String))),
        usage_events.c.month.is_(None),
    )
    .distinct()
)
_STORE_EVENTS = UnnestInsert(
    "webhook_events",
    (
        ("call_sid", "varchar"),
        ("sequence_number", "int"),
        ("call_status", "varchar"),
        ("event_at", "timestamptz"),
        ("received_at", "timestamptz"),
        ("user_id", "bigint"),
        ("agent_id", "bigint"),
        ("payload", "text"),
    ),
    conflict="call_sid, sequence_number, call_status",
    returning="id, call_sid, sequence_number, call_status",
)


def owner_number(event: StatusCallback) -> str | None:
    """The number whose agent owns a new call: the caller's for an outbound call, else the called."""
    return event.call_from if event.is_outbound else event.call_to


@dataclass
class Queued:
    """A callback of the batch: its event and form, and what its URL names (agent, authorization)."""

    event: StatusCallback
    form: Mapping[str, str]
    agent_id: int | None
    authorization_id: str | None
    default_calendar: Calendar  # for a customer seen for the first time


async def lock_batch(conn: Connection, batch: Sequence[Queued]) -> BatchLocks:
    """Lock, read and store what `batch` needs, in one order; frees the gate's slots of the calls
    that showed up (as `record_in` does one by one)."""
    sids = sorted({queued.event.call_sid for queued in batch})
    rows = {row["call_sid"]: row for row in await _LOCK_CALLS.fetch_all(conn, call_sids=sids)}
    owners = await _new_calls_owners(conn, [queued for queued in batch if queued.event.call_sid not in rows])
    completing = {q.event.call_sid for q in batch if q.event.call_status == "completed"}
    completing_users = {row["user_id"] for sid, row in rows.items() if sid in completing}
    # A customer seen for the first time is stored before any billing lock is taken, as one by one.
    await _ensure_customers(conn, owners, {q.event.call_sid: q.default_calendar for q in reversed(batch)})
    new_owners = {owner.user_id for owner in owners.values()}
    await lock_users_billing(conn, user_ids=[*completing_users, *new_owners])
    completing_owners = {owner.user_id for sid, owner in owners.items() if sid in completing}
    await look_up_alerts(conn, user_ids=completing_users | completing_owners)
    waited_for: set[tuple[int, str]] = set()
    if owners:
        found = await _WAITED_FOR.fetch_all(
            conn, user_ids=sorted({o.user_id for o in owners.values()}), call_sids=sorted(owners)
        )
        waited_for = {(row["user_id"], row["call_sid"]) for row in found}
    event_ids = await _store_events(conn, batch, rows, owners)
    await _release_slots(conn, batch, rows, owners, event_ids)
    return BatchLocks(rows, owners, waited_for, event_ids)


async def _release_slots(
    conn: Connection,
    batch: Sequence[Queued],
    rows: Mapping[str, Mapping[str, Any]],
    owners: Mapping[str, AgentOwner],
    event_ids: Mapping[EventKey, int],
) -> None:
    """A call's first stored callback frees the slot the gate held for it, as does one naming
    its authorization."""
    sids, authorizations = set(), set()
    for queued in batch:
        sid = queued.event.call_sid
        if event_key(queued.event) not in event_ids or (sid not in rows and sid not in owners):
            continue  # stored before, or of a call that matches no agent: frees nothing
        if sid in owners:
            sids.add(sid)
        if queued.authorization_id is not None:
            authorizations.add(queued.authorization_id)
            sids.add(sid)
    await release_slots(
        conn, call_sids=sorted(sids), authorization_ids=sorted(authorizations), now=datetime.now(UTC)
    )


async def _new_calls_owners(conn: Connection, new: list[Queued]) -> dict[str, AgentOwner]:
    """The owner of each new call: the agent its callback names, else the one on its number."""
    by_id = {queued.agent_id for queued in new if queued.agent_id is not None}
    numbers = {owner_number(queued.event) for queued in new if queued.agent_id is None} - {None, ""}
    found_by_id: dict[int, AgentOwner] = {}
    if by_id:
        for row in await _OWNERS_BY_ID.fetch_all(conn, ids=sorted(by_id)):
            found_by_id[row["id"]] = _owner(row)
    found_by_number: dict[str, AgentOwner] = {}
    if numbers:
        for row in await _OWNERS_BY_NUMBER.fetch_all(conn, numbers=sorted(numbers)):  # type: ignore[type-var]
            found_by_number[row["number"]] = _owner(row)
    each: dict[str, set[AgentOwner | None]] = {}
    for queued in new:
        if queued.agent_id is not None:
            owner = found_by_id.get(queued.agent_id)
        else:
            owner = found_by_number.get(owner_number(queued.event) or "")
        each.setdefault(queued.event.call_sid, set()).add(owner)
    if any(len(found) > 1 for found in each.values()):
        raise MixedOwners
    return {sid: owner for sid, (owner,) in each.items() if owner is not None}


async def _ensure_customers(
    conn: Connection, owners: dict[str, AgentOwner], default_calendars: Mapping[str, Calendar]
) -> None:
    """Store the customers seen for the first time (with the default calendar of their call's
    first callback), and note their calendar in `owners`."""
    made: dict[int, str] = {}
    for sid, owner in sorted(owners.items(), key=lambda item: item[1].user_id):  # in one order
        if owner.timezones is None:
            if owner.user_id not in made:
                customer = await ensure_customer(conn, user_id=owner.user_id, calendar=default_calendars[sid])
                made[owner.user_id] = calendar_text(customer.calendar)
            owners[sid] = owner._replace(timezones=made[owner.user_id])


def _owner(row: Mapping[str, Any]) -> AgentOwner:
    return AgentOwner(row["id"], row["user_id"], row["timezones"], row["voice_url"])


async def _store_events(
    conn: Connection,
    batch: Sequence[Queued],
    rows: Mapping[str, Mapping[str, Any]],
    owners: Mapping[str, AgentOwner],
) -> dict[EventKey, int]:
    """Store the batch's events once each (as `events.insert_event` does one by one), attributed
    to their call's owner; the ids of those stored now, by key."""
    now, stored = datetime.now(UTC), []
    for queued in batch:
        event = queued.event
        row, owner = rows.get(event.call_sid), owners.get(event.call_sid)
        sid, sequence, status = event_key(event)
        stored.append(
            {
                "call_sid": sid,
                "sequence_number": sequence,
                "call_status": status,
                "event_at": event.timestamp,
                "received_at": now,
                "user_id": row["user_id"] if row else owner.user_id if owner else None,
                "agent_id": row["agent_id"] if row else owner.agent_id if owner else None,
                "payload": _payload(queued.form),
            }
        )
    return {
        (r["call_sid"], r["sequence_number"], r["call_status"]): r["id"]
        for r in await _STORE_EVENTS.insert(conn, stored)
    }


def _payload(form: Mapping[str, str]) -> str:
    return json.dumps(dict(form), separators=(",", ":"))
