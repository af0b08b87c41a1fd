"""`call_terminations`: calls spend control decided to end, and the hang-up request until Twilio
has taken it.

The decision is written once per call (the call's id is the key), with the reason on the call, in
one transaction; the request is sent after commit and retried until it is taken, so a crash loses
no hang-up and a call is never ended twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.dialects.postgresql import insert

from callmeter.call_lifecycle import CallStatus
from callmeter.db.connection import Connection
from callmeter.db.locks import is_postgres
from callmeter.db.outbox import enqueue_call_event
from callmeter.db.tables import call_terminations, call_usage, customers
from callmeter.notifications import EventType


@dataclass(frozen=True)
class Termination:
    call_id: int
    user_id: int
    call_sid: str
    reason: str
    attempts: int
    call_status: CallStatus


async def watched_users(conn: Connection) -> list[int]:
    """Customers with a call in progress and something to watch: `enforce` on, a prepaid balance
    or a spend cap."""
    rows = await conn.fetch_all(
        select(customers.c.user_id)
        .where(
            or_(
                customers.c.enforce.is_(True),
                customers.c.balance_usd.is_not(None),
                customers.c.monthly_spend_cap_usd.is_not(None),
            ),
            select(call_usage.c.id)
            .where(call_usage.c.user_id == customers.c.user_id, call_usage.c.status == CallStatus.ACTIVE)
            .exists(),
        )
        .order_by(customers.c.user_id)
    )
    return [row["user_id"] for row in rows]


async def decide(
    conn: Connection, *, user_id: int, calls: Sequence[tuple[int, str]], reason: str, now: datetime
) -> int:
    """End these (call id, call sid) calls of the user for `reason`; how many were not decided before.

    Runs under the user's billing lock, which the recording of a callback takes after locking its
    call's row: on PostgreSQL the calls' rows are locked first with SKIP LOCKED, so a call being
    recorded right now is left to the next pass (it is probably completing) instead of deadlocking.
    """
    if is_postgres(conn) and calls:
        locked = await conn.fetch_all(
            select(call_usage.c.id)
            .where(call_usage.c.id.in_([call_id for call_id, _ in calls]))
            .with_for_update(skip_locked=True)
        )
        free = {row["id"] for row in locked}
        calls = [(call_id, call_sid) for call_id, call_sid in calls if call_id in free]
    decided = 0
    for call_id, call_sid in calls:
        added = await conn.fetch_val(
            insert(call_terminations)
            .values(
                call_id=call_id,
                user_id=user_id,
                call_sid=call_sid,
                reason=reason,
                decided_at=now,
                attempts=0,
                next_attempt_at=now,
            )
            .on_conflict_do_nothing(index_elements=["call_id"])
            .returning(call_terminations.c.call_id)
        )
        if added is not None:
            decided += 1
            await conn.execute(
                call_usage.update().where(call_usage.c.id == call_id).values(terminated_reason=reason)
            )
            await enqueue_call_event(
                conn, type=EventType.CALL_TERMINATED, user_id=user_id, call_id=call_id, now=now
            )
    return decided


async def claim_due(
    conn: Connection, *, now: datetime, lease_until: datetime, limit: int = 100
) -> list[Termination]:
    """Hang-ups due to be sent, leased to the caller until `lease_until` (on PostgreSQL skipping rows
    another process is claiming), so they are sent outside any transaction and, after a crash, again
    when the lease ends."""
    query = (
        select(call_terminations, call_usage.c.status)
        .join(call_usage, call_usage.c.id == call_terminations.c.call_id)
        .where(call_terminations.c.sent_at.is_(None), call_terminations.c.next_attempt_at <= now)
        .order_by(call_terminations.c.next_attempt_at)
        .limit(limit)
    )
    if is_postgres(conn):
        query = query.with_for_update(of=call_terminations, skip_locked=True)
    rows = await conn.fetch_all(query)
    if rows:
        await conn.execute(
            call_terminations.update()
            .where(call_terminations.c.call_id.in_([row["call_id"] for row in rows]))
            .values(next_attempt_at=lease_until)
        )
    return [
        Termination(
            row["call_id"],
            row["user_id"],
            row["call_sid"],
            row["reason"],
            row["attempts"],
            CallStatus(row["status"]),
        )
        for row in rows
    ]


async def mark_sent(conn: Connection, *, call_id: int, at: datetime, note: str | None = None) -> None:
    await conn.execute(
        call_terminations.update()
        .where(call_terminations.c.call_id == call_id)
        .values(sent_at=at, next_attempt_at=None, last_error=note)
    )


async def mark_failed(
    conn: Connection, *, call_id: int, attempts: int, retry_at: datetime, error: str
) -> None:
    await conn.execute(
        call_terminations.update()
        .where(call_terminations.c.call_id == call_id)
        .values(attempts=attempts, next_attempt_at=retry_at, last_error=error[:2000])
    )
