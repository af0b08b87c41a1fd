"""Usage events into their meters' months: stored once per customer and idempotency key, billed in
their call's month, in the transaction that stores them (or, for a call not known yet, in the one
that records its first callback), under the user's billing lock.

Billing itself is db/meter_billing.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, text

from callmeter.billing.meters import check_month_charge, meter_charge, rate_of
from callmeter.billing.plans import Plan
from callmeter.db import meter_billing
from callmeter.db.connection import Connection
from callmeter.db.customers import fetch_customer
from callmeter.db.locks import is_postgres, lock_user_billing
from callmeter.db.meter_tables import usage_events
from callmeter.db.prepared import Prepared
from callmeter.db.types import to_quantity, to_utc
from callmeter.months import Month

# A waiting event whose call never appears is billed after this long, in the month it occurred in.
WAIT_FOR_CALL_SECONDS = 24 * 3600


class EventConflictError(Exception):
    """An idempotency key seen before with other values."""


@dataclass(frozen=True)
class UsageEvent:
    key: str
    call_sid: str | None
    meter: str
    quantity: Decimal
    occurred_at: datetime

    def same_as(self, other: UsageEvent) -> bool:
        return (self.call_sid, self.meter, self.quantity, self.occurred_at) == (
            other.call_sid,
            other.meter,
            other.quantity,
            other.occurred_at,
        )


@dataclass
class Billed:
    """What billing some events changed: for the live updates after commit."""

    months: set[Month] = field(default_factory=set)
    call_ids: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class StoreResult:
    accepted: int
    duplicates: int
    billed: Billed


# A batch's keys and call sids as one parameter: an array on PostgreSQL, JSON on SQLite (a statement
# of 500 bound values costs more to build than to run). Joined from `unnest`, so the planner probes
# the unique index once per key whatever its statistics say (`= ANY` over a table not analyzed yet
# was a sequential scan: 77 ms a batch of 500 at 10,000 rows).
def _list(conn: Connection, values: list[str]) -> object:
    return values if is_postgres(conn) else json.dumps(values)


class _PerDialect:
    def __init__(self, postgres: str, sqlite: str) -> None:
        self.statements = {True: Prepared(text(postgres)), False: Prepared(text(sqlite))}

    async def fetch_all(self, conn: Connection, **params: object) -> list[Any]:
        return await self.statements[is_postgres(conn)].fetch_all(conn, **params)


_EVENT_COLUMNS = "idempotency_key, call_sid, meter, quantity, occurred_at"
_SEEN = _PerDialect(
    f"SELECT {_EVENT_COLUMNS} FROM unnest(CAST(:keys AS varchar[])) AS batch(key) "
    "JOIN usage_events ON user_id = :user_id AND idempotency_key = batch.key",
    f"SELECT {_EVENT_COLUMNS} FROM usage_events WHERE user_id = :user_id "
    "AND idempotency_key IN (SELECT value FROM json_each(:keys))",
)
_CALLS = _PerDialect(
    "SELECT id, call_sid, month FROM unnest(CAST(:sids AS varchar[])) AS batch(sid) "
    "JOIN call_usage ON call_sid = batch.sid AND user_id = :user_id",
    "SELECT id, call_sid, month FROM call_usage WHERE user_id = :user_id "
    "AND call_sid IN (SELECT value FROM json_each(:sids))",
)
_INSERT = Prepared(
    usage_events.insert(),
    columns=(
        "user_id",
        "idempotency_key",
        "call_sid",
        "meter",
        "quantity",
        "occurred_at",
        "received_at",
        "call_id",
        "month",
        "cost_usd",
    ),
)


# PostgreSQL: the whole batch in one statement, from arrays (an INSERT per row, even pipelined, was
# three quarters of a batch's time).
_INSERT_ARRAYS = Prepared(
    text(
        "INSERT INTO usage_events (user_id, idempotency_key, call_sid, meter, quantity, occurred_at, "
        "received_at, call_id, month, cost_usd) "
        "SELECT :user_id, k, s, m, q, o, :received_at, c, mo, co FROM unnest("
        "CAST(:keys AS varchar[]), CAST(:sids AS varchar[]), CAST(:meters AS varchar[]), "
        "CAST(CAST(:quantities AS text[]) AS numeric[]), CAST(:occurred AS timestamptz[]), "
        "CAST(:call_ids AS bigint[]), CAST(:months AS varchar[]), CAST(CAST(:costs AS text[]) AS numeric[])"
        ") AS batch(k, s, m, q, o, c, mo, co)"
    )
)


async def _insert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    if not is_postgres(conn):
        await _INSERT.execute_many(conn, rows)
        return
    await _INSERT_ARRAYS.execute(
        conn,
        user_id=rows[0]["user_id"],
        received_at=rows[0]["received_at"],
        keys=[row["idempotency_key"] for row in rows],
        sids=[row["call_sid"] for row in rows],
        meters=[row["meter"] for row in rows],
        quantities=[str(row["quantity"]) for row in rows],  # as text: asyncpg's numeric encoding is slow
        occurred=[row["occurred_at"] for row in rows],
        call_ids=[row["call_id"] for row in rows],
        months=[row["month"] for row in rows],
        costs=[None if row["cost_usd"] is None else str(row["cost_usd"]) for row in rows],
    )


async def store_events(
    conn: Connection, *, user_id: int, events: Sequence[UsageEvent], default_plan: Plan, now: datetime
) -> StoreResult:
    """Store the events not seen before (`events` has no key twice) and bill those whose call is
    known or that name none; raises EventConflictError (the caller's transaction then rolls back)."""
    await lock_user_billing(conn, user_id=user_id)
    customer = await fetch_customer(conn, user_id=user_id)
    assert customer is not None, "the caller stores the customer first"
    seen = await _SEEN.fetch_all(conn, user_id=user_id, keys=_list(conn, [event.key for event in events]))
    known = {row["idempotency_key"]: _event(row) for row in seen}
    for event in events:
        if event.key in known and not known[event.key].same_as(event):
            raise EventConflictError(f"idempotency_key {event.key[:60]!r} was used for another event")
    new = [event for event in events if event.key not in known]
    sids = {event.call_sid for event in new if event.call_sid}
    calls = {}
    if sids:
        rows = await _CALLS.fetch_all(conn, user_id=user_id, sids=_list(conn, sorted(sids)))
        calls = {row["call_sid"]: (row["id"], Month.stored(row["month"])) for row in rows}
    placed: list[tuple[UsageEvent, int | None, Month | None]] = []
    for event in new:
        if event.call_sid is None:
            placed.append((event, None, customer.calendar.month_of(event.occurred_at)))
        elif event.call_sid in calls:
            placed.append((event, *calls[event.call_sid]))
        else:
            placed.append((event, None, None))  # waits for its call
    waiting = [event for event, _, month in placed if month is None]
    if waiting:  # billed later: no one of them may be more than a month's charge can hold
        plan = await meter_billing.plan_of(conn, user_id, customer.calendar.current(now), default_plan)
        for event in waiting:
            check_month_charge(
                event.meter, "an event", meter_charge(rate_of(plan.meter_rates, event.meter), event.quantity)
            )
    billed = Billed()
    costs = await meter_billing.bill(
        conn,
        user_id=user_id,
        items=[(month, event.meter, event.quantity) for event, _, month in placed if month is not None],
        default_plan=default_plan,
        now=now,
    )
    rows, billable = [], iter(costs)
    for event, call_id, month in placed:
        rows.append(
            {
                "user_id": user_id,
                "idempotency_key": event.key,
                "call_sid": event.call_sid,
                "meter": event.meter,
                "quantity": event.quantity,
                "occurred_at": event.occurred_at,
                "received_at": now,
                "call_id": call_id,
                "month": None if month is None else str(month),
                "cost_usd": None if month is None else next(billable),
            }
        )
        if month is not None:
            billed.months.add(month)
        if call_id is not None:
            billed.call_ids.add(call_id)
    await _insert(conn, rows)
    return StoreResult(len(new), len(events) - len(new), billed)


def _event(row: object) -> UsageEvent:
    return UsageEvent(
        row["idempotency_key"],  # type: ignore[index]
        row["call_sid"],  # type: ignore[index]
        row["meter"],  # type: ignore[index]
        to_quantity(row["quantity"]),  # type: ignore[index]
        to_utc(row["occurred_at"]),  # type: ignore[index]
    )


_WAITING = Prepared(
    select(usage_events.c.id, usage_events.c.meter, usage_events.c.quantity)
    .where(
        usage_events.c.user_id == bindparam("user_id"),
        usage_events.c.call_sid == bindparam("call_sid"),
        usage_events.c.month.is_(None),
    )
    .order_by(usage_events.c.id)
)


async def attach_waiting(
    conn: Connection, *, user_id: int, call_id: int, call_sid: str, month: Month, default_plan: Plan
) -> Billed | None:
    """Bill the events that waited for this call, now known (its first callback, with its row
    locked); None when none waited, the common case: the user's billing lock (as completing the
    call takes it) and one indexed lookup."""
    # The lock first, in a statement of its own: the lookup's snapshot must be taken after it, or it
    # could miss events a concurrent `store_events` stored as waiting, not seeing this call yet.
    await lock_user_billing(conn, user_id=user_id)
    waiting = await _WAITING.fetch_all(conn, user_id=user_id, call_sid=call_sid)
    if not waiting:
        return None
    await _bill_stored(
        conn, user_id=user_id, rows=waiting, month=month, call_id=call_id, default_plan=default_plan
    )
    return Billed({month}, {call_id})


OVERDUE_CHUNK = 5000  # events billed per transaction: the billing lock is not held for long


async def bill_overdue(
    conn: Connection, *, user_id: int, now: datetime, default_plan: Plan
) -> tuple[int, set[Month]]:
    """Bill up to OVERDUE_CHUNK of a user's events whose call has not appeared in
    WAIT_FOR_CALL_SECONDS, each in the month it occurred in (the customer's zone), with no call;
    how many, and the months they went to."""
    await lock_user_billing(conn, user_id=user_id)
    customer = await fetch_customer(conn, user_id=user_id)
    rows = await conn.fetch_all(
        select(usage_events.c.id, usage_events.c.meter, usage_events.c.quantity, usage_events.c.occurred_at)
        .where(
            usage_events.c.user_id == user_id,
            usage_events.c.month.is_(None),
            usage_events.c.received_at <= now - timedelta(seconds=WAIT_FOR_CALL_SECONDS),
        )
        .order_by(usage_events.c.id)
        .limit(OVERDUE_CHUNK)
    )
    if customer is None or not rows:
        return 0, set()
    by_month: dict[Month, list[object]] = {}
    for row in rows:
        by_month.setdefault(customer.calendar.month_of(to_utc(row["occurred_at"])), []).append(row)
    for month, found in by_month.items():
        await _bill_stored(
            conn, user_id=user_id, rows=found, month=month, call_id=None, default_plan=default_plan
        )
    return len(rows), set(by_month)


async def users_with_overdue(conn: Connection, *, now: datetime) -> list[int]:
    rows = await conn.fetch_all(
        select(usage_events.c.user_id)
        .where(
            usage_events.c.month.is_(None),
            usage_events.c.received_at <= now - timedelta(seconds=WAIT_FOR_CALL_SECONDS),
        )
        .distinct()
    )
    return [row["user_id"] for row in rows]


# Waiting events billed in one statement (PostgreSQL), or one prepared statement a row (SQLite).
_BILL_STORED = Prepared(
    text(
        "UPDATE usage_events SET month = :month, call_id = :call_id, cost_usd = billed.cost "
        "FROM unnest(CAST(:ids AS bigint[]), CAST(CAST(:costs AS text[]) AS numeric[])) AS billed(id, cost) "
        "WHERE usage_events.id = billed.id"
    )
)
_BILL_ONE = Prepared(
    usage_events.update().where(usage_events.c.id == bindparam("key_id")),
    columns=("month", "cost_usd", "call_id"),
)


async def _bill_stored(
    conn: Connection,
    *,
    user_id: int,
    rows: Sequence[object],
    month: Month,
    call_id: int | None,
    default_plan: Plan,
) -> None:
    costs = await meter_billing.bill(
        conn,
        user_id=user_id,
        items=[(month, row["meter"], to_quantity(row["quantity"])) for row in rows],  # type: ignore[index]
        default_plan=default_plan,
        now=datetime.now(UTC),
    )
    ids = [row["id"] for row in rows]  # type: ignore[index]
    if is_postgres(conn):
        await _BILL_STORED.execute(
            conn,
            ids=ids,
            costs=[str(cost) for cost in costs],
            month=str(month),
            call_id=call_id,
        )
        return
    await _BILL_ONE.execute_many(
        conn,
        [
            {"key_id": event_id, "month": str(month), "cost_usd": cost, "call_id": call_id}
            for event_id, cost in zip(ids, costs, strict=True)
        ],
    )


async def call_moved(
    conn: Connection, *, user_id: int, call_id: int, from_month: Month, to_month: Month, default_plan: Plan
) -> Billed | None:
    """A call's month changed (it rang before a month's end and was answered after): its billed
    events move with it, and both months' meters are re-rated. None when it has none: the user's
    billing lock (first, so a batch being stored for this call is seen after its commit) and one
    lookup. Rare: only a call whose answer falls in another month than its first event."""
    await lock_user_billing(conn, user_id=user_id)
    moving = await conn.fetch_val(
        select(usage_events.c.id)
        .where(usage_events.c.call_id == call_id, usage_events.c.month.is_not(None))
        .limit(1)
    )
    if moving is None:
        return None
    before = {
        month: await meter_billing.meters_charge(conn, user_id=user_id, month=month)
        for month in (from_month, to_month)
    }
    await conn.execute(
        usage_events.update()
        .where(usage_events.c.call_id == call_id, usage_events.c.month == str(from_month))
        .values(month=str(to_month))
    )
    for month in (from_month, to_month):
        plan = await meter_billing.plan_of(conn, user_id, month, default_plan)
        after = await meter_billing.rerate_month(conn, user_id=user_id, month=month, plan=plan)
        await meter_billing.add_to_month(
            conn,
            user_id=user_id,
            month=month,
            amount=after - before[month],
            plan=plan,
            default_plan=default_plan,
        )
    return Billed({from_month, to_month}, {call_id})
