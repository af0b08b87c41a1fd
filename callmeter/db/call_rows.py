"""A call's row on the recording path: locked, found an owner for, created, and advanced.

`plan_advance` is the pure part (the call's state after an event, and its month in the customer's
calendar); `call_update` the values the row is updated with. db/recording.py puts them together
with rating; a group-commit batch writes the rows its events advanced simply in one statement.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert

from callmeter.billing.rating import CallCharge
from callmeter.call_lifecycle import (
    CREATED,
    CallEventKind,
    CallState,
    CallStatus,
    StatusCallback,
    apply_event,
)
from callmeter.db.agents import AgentOwner, find_agent_owner
from callmeter.db.connection import Connection
from callmeter.db.customers import ensure_customer, stored_calendar
from callmeter.db.prepared import Prepared, UnnestInsert
from callmeter.db.tables import call_usage, customers
from callmeter.db.types import to_decimal, to_utc
from callmeter.months import Calendar, Month

# The call's row, locked until the transaction ends: concurrent events of one call take turns;
# with its customer's billing calendar (NULL: a customer not seen yet).
LOCK_CALL = Prepared(
    select(call_usage, customers.c.timezones)
    .outerjoin(customers, customers.c.user_id == call_usage.c.user_id)
    .where(call_usage.c.call_sid == bindparam("call_sid"))
    .with_for_update(of=call_usage)
)
CREATE_CALL = Prepared(
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
UPDATE_CALL = Prepared(
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


@dataclass(frozen=True)
class Advance:
    """What an event does to a call: its state before and after, and its month after."""

    before: CallState
    after: CallState
    change: CallEventKind | None
    month: Month

    @property
    def completes(self) -> bool:
        """The call completed now: it is rated and counted into its month."""
        return self.change is CallEventKind.ENDED and self.after.status is CallStatus.COMPLETED

    def moves_month(self, row: Mapping[str, Any]) -> bool:
        """The call's month changed (its billed usage events move with it)."""
        return str(self.month) != row["month"]


def plan_advance(row: Mapping[str, Any], event: StatusCallback, calendar: Calendar) -> Advance:
    before = CallState(
        twilio_status=row["twilio_status"],
        status=CallStatus(row["status"]),
        first_event_at=_utc(row["first_event_at"]),
        started_at=_utc(row["started_at"]),
        ended_at=_utc(row["ended_at"]),
        duration_seconds=row["duration_seconds"],
    )
    after, change = apply_event(before, event, calendar)
    return Advance(before, after, change, calendar.month_of(after.sort_at))


def stored_charge(row: Mapping[str, Any]) -> CallCharge:
    return CallCharge(row["billable_seconds"], to_decimal(row["cost_usd"]))


def state_columns(advance: Advance) -> dict[str, Any]:
    """The columns that hold a call's state, as `advance` leaves it."""
    after = advance.after
    return {
        "twilio_status": after.twilio_status,
        "status": after.status,
        "first_event_at": after.first_event_at,
        "started_at": after.started_at,
        "ended_at": after.ended_at,
        "duration_seconds": after.duration_seconds,
        "sort_at": after.sort_at,
        "month": str(advance.month),
    }


def call_update(
    row: Mapping[str, Any], event: StatusCallback, advance: Advance, charge: CallCharge, position: int | None
) -> dict[str, Any]:
    """`UPDATE_CALL`'s parameters: the row after `advance` (and, for a completed call, its charge)."""
    return {
        "key_id": row["id"],
        **state_columns(advance),
        "updated_at": datetime.now(UTC),
        "call_from": row["call_from"] or event.call_from,
        "call_to": row["call_to"] or event.call_to,
        "direction": row["direction"] or event.direction,
        "billable_seconds": charge.billable_seconds,
        "cost_usd": charge.cost,
        "month_position": position,
    }


async def calendar_of(conn: Connection, user_id: int, stored: str | None, default: Calendar) -> Calendar:
    """The customer's billing calendar; a customer seen for the first time is given `default`."""
    if stored is not None:
        return stored_calendar(stored)
    return (await ensure_customer(conn, user_id=user_id, calendar=default)).calendar


async def find_owner(conn: Connection, *, event: StatusCallback, agent_id: int | None) -> AgentOwner | None:
    """The owner of a new call: the agent the callback names, else the one on its number."""
    if agent_id is not None:
        return await find_agent_owner(conn, agent_id=agent_id)
    number = event.call_from if event.is_outbound else event.call_to
    return await find_agent_owner(conn, number=number)


def new_call(event: StatusCallback, owner: AgentOwner, calendar: Calendar) -> dict[str, Any]:
    """The row a call is created with at its first event (which then advances it)."""
    return {
        "call_sid": event.call_sid,
        "user_id": owner.user_id,
        "agent_id": owner.agent_id,
        "call_from": event.call_from,
        "call_to": event.call_to,
        "direction": event.direction,
        "account_sid": event.account_sid,
        "twilio_status": CREATED,
        "status": CallStatus.ACTIVE,
        "duration_seconds": 0,
        "billable_seconds": 0,
        "cost_usd": Decimal(0),
        "first_event_at": event.timestamp,
        "started_at": None,
        "ended_at": None,
        "sort_at": event.timestamp,
        "month": str(calendar.month_of(event.timestamp)),
        "updated_at": datetime.now(UTC),
    }


async def create_call(
    conn: Connection, *, event: StatusCallback, owner: AgentOwner, calendar: Calendar
) -> tuple[Mapping[str, Any], bool]:
    """Create the call at its first event; a concurrent first event of the same call just waits."""
    row = await CREATE_CALL.fetch_one(conn, **new_call(event, owner, calendar))
    if row is not None:
        return row, True
    # Another transaction created it first; its row is ours once that one commits.
    return await LOCK_CALL.fetch_one(conn, call_sid=event.call_sid), False


# PostgreSQL, for a batch: calls created in the state their first event left them in, in one statement.
CREATE_CALLS = UnnestInsert(
    "call_usage",
    (
        ("call_sid", "varchar"),
        ("user_id", "bigint"),
        ("agent_id", "bigint"),
        ("call_from", "varchar"),
        ("call_to", "varchar"),
        ("direction", "varchar"),
        ("account_sid", "varchar"),
        ("twilio_status", "varchar"),
        ("status", "varchar"),
        ("duration_seconds", "int"),
        ("billable_seconds", "int"),
        ("cost_usd", "numeric"),
        ("first_event_at", "timestamptz"),
        ("started_at", "timestamptz"),
        ("ended_at", "timestamptz"),
        ("sort_at", "timestamptz"),
        ("month", "varchar"),
        ("updated_at", "timestamptz"),
    ),
    conflict="call_sid",
    returning="*",
)


def _utc(value: object) -> datetime | None:
    return None if value is None else to_utc(value)
