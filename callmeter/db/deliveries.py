"""`webhook_deliveries`: the sender's claims on them, every attempt, and their listing.

Deliveries are claimed with a lease (`next_attempt_at` moved past the send's timeout) in a short
transaction of their own, so no lock is held while a receiver answers and, on PostgreSQL,
`FOR UPDATE SKIP LOCKED` lets several processes claim without taking the same delivery. Only the
oldest pending delivery of each (endpoint, customer) may be claimed, so one customer's events
reach an endpoint in order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import aliased

from callmeter.db.connection import Connection
from callmeter.db.locks import is_postgres
from callmeter.db.prepared import Prepared
from callmeter.db.types import to_utc
from callmeter.db.webhook_tables import outbox_events, webhook_attempts, webhook_deliveries, webhook_endpoints
from callmeter.rows import DeliveryRow

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
# Longer than a round may take: CLAIM_BATCH sends, CONCURRENT_SENDS at a time (workers/deliveries.py),
# each at most its 10 s timeout: 4 waves, 40 s. An outcome is recorded only while its lease holds.
LEASE = timedelta(seconds=90)


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    endpoint_id: int
    url: str
    sealed_secret: str
    event_id: str
    body: str
    attempts: int
    created_at: datetime
    failing_since: datetime | None
    leased_until: datetime


def _claim_query(limit: int, postgres: bool) -> Any:
    earlier = aliased(webhook_deliveries)
    query = (
        select(
            webhook_deliveries.c.id,
            webhook_deliveries.c.endpoint_id,
            webhook_deliveries.c.attempts,
            webhook_deliveries.c.created_at,
            webhook_endpoints.c.url,
            webhook_endpoints.c.secret,
            webhook_endpoints.c.failing_since,
            outbox_events.c.event_id,
            outbox_events.c.body,
        )
        .join(webhook_endpoints, webhook_endpoints.c.id == webhook_deliveries.c.endpoint_id)
        .join(outbox_events, outbox_events.c.id == webhook_deliveries.c.outbox_id)
        .where(
            webhook_deliveries.c.status == PENDING,
            webhook_deliveries.c.next_attempt_at <= bindparam("now"),
            webhook_endpoints.c.deleted_at.is_(None),
            webhook_endpoints.c.disabled.is_(False),
            ~select(earlier.c.id)
            .where(
                and_(
                    earlier.c.endpoint_id == webhook_deliveries.c.endpoint_id,
                    earlier.c.user_id == webhook_deliveries.c.user_id,
                    earlier.c.status == PENDING,
                    earlier.c.id < webhook_deliveries.c.id,
                )
            )
            .exists(),
        )
        .order_by(webhook_deliveries.c.id)
        .limit(limit)
    )
    if postgres:
        query = query.with_for_update(of=webhook_deliveries, skip_locked=True)
    return query


CLAIM_BATCH = 200
_CLAIMS = {postgres: Prepared(_claim_query(CLAIM_BATCH, postgres)) for postgres in (True, False)}


async def claim_due(conn: Connection, *, now: datetime) -> list[Claim]:
    """Up to CLAIM_BATCH deliveries due now, each leased to the caller until `now + LEASE`."""
    rows = await _CLAIMS[is_postgres(conn)].fetch_all(conn, now=now)
    if rows:
        await conn.execute(
            webhook_deliveries.update()
            .where(webhook_deliveries.c.id.in_([row["id"] for row in rows]))
            .values(next_attempt_at=now + LEASE)
        )
    return [
        Claim(
            delivery_id=row["id"],
            endpoint_id=row["endpoint_id"],
            url=row["url"],
            sealed_secret=row["secret"],
            event_id=row["event_id"],
            body=row["body"],
            attempts=row["attempts"],
            created_at=to_utc(row["created_at"]),
            failing_since=row["failing_since"] and to_utc(row["failing_since"]),
            leased_until=now + LEASE,
        )
        for row in rows
    ]


@dataclass(frozen=True)
class Outcome:
    """What one attempt decided for its delivery (and its endpoint)."""

    delivery_id: int
    endpoint_id: int
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int
    status: str  # PENDING (retry at next_attempt_at), SUCCEEDED or FAILED
    next_attempt_at: datetime | None
    endpoint_failing_since: datetime | None
    disable_endpoint: bool


async def record(conn: Connection, outcomes: Sequence[Outcome], *, leased_until: datetime) -> int:
    """Keep every attempt and move each delivery and endpoint on, in a few statements per round;
    how many were recorded. A delivery whose lease has passed to another claim (the round outlived
    it, or it was redelivered meanwhile) is left to that claim: its attempt is not recorded."""
    if not outcomes:
        return 0
    held_query = select(webhook_deliveries.c.id).where(
        webhook_deliveries.c.id.in_([outcome.delivery_id for outcome in outcomes]),
        webhook_deliveries.c.status == PENDING,
        webhook_deliveries.c.next_attempt_at == leased_until,
    )
    if is_postgres(conn):
        held_query = held_query.with_for_update()
    held = {row["id"] for row in await conn.fetch_all(held_query)}
    outcomes = [outcome for outcome in outcomes if outcome.delivery_id in held]
    if not outcomes:
        return 0
    await conn.execute(
        webhook_attempts.insert().values(
            [
                {
                    "delivery_id": outcome.delivery_id,
                    "attempt": outcome.attempt,
                    "at": outcome.at,
                    "status_code": outcome.status_code,
                    "error": outcome.error,
                    "duration_ms": outcome.duration_ms,
                }
                for outcome in outcomes
            ]
        )
    )
    succeeded = [outcome for outcome in outcomes if outcome.status == SUCCEEDED]
    # The common case: one statement for all the successes with the same status code.
    for code in {outcome.status_code for outcome in succeeded}:
        ids = [outcome.delivery_id for outcome in succeeded if outcome.status_code == code]
        await conn.execute(
            webhook_deliveries.update()
            .where(webhook_deliveries.c.id.in_(ids))
            .values(
                status=SUCCEEDED,
                attempts=webhook_deliveries.c.attempts + 1,
                next_attempt_at=None,
                last_status_code=code,
                last_error=None,
                completed_at=succeeded[0].at,
            )
        )
    for outcome in outcomes:
        if outcome.status == SUCCEEDED:
            continue
        await conn.execute(
            webhook_deliveries.update()
            .where(webhook_deliveries.c.id == outcome.delivery_id)
            .values(
                status=outcome.status,
                attempts=outcome.attempt,
                next_attempt_at=outcome.next_attempt_at,
                last_status_code=outcome.status_code,
                last_error=outcome.error,
                completed_at=None if outcome.status == PENDING else outcome.at,
            )
        )
    # Each endpoint once: the latest outcome of the round says whether it is failing.
    latest = {outcome.endpoint_id: outcome for outcome in outcomes}
    for endpoint_id, outcome in latest.items():
        values: dict[str, Any] = {"failing_since": outcome.endpoint_failing_since}
        if outcome.disable_endpoint:
            values["disabled"] = True
        await conn.execute(
            webhook_endpoints.update().where(webhook_endpoints.c.id == endpoint_id).values(**values)
        )
    return len(outcomes)


def delivery_row(row: Mapping[str, Any]) -> DeliveryRow:
    return DeliveryRow(
        id=row["id"],
        event_id=row["event_id"],
        event_type=row["type"],
        attempts=row["attempts"],
        status=row["status"],
        last_status_code=row["last_status_code"],
        next_attempt_at=row["next_attempt_at"] and to_utc(row["next_attempt_at"]),
        created_at=to_utc(row["created_at"]),
    )


_DELIVERIES = select(
    webhook_deliveries.c.id,
    webhook_deliveries.c.attempts,
    webhook_deliveries.c.status,
    webhook_deliveries.c.last_status_code,
    webhook_deliveries.c.next_attempt_at,
    webhook_deliveries.c.created_at,
    outbox_events.c.event_id,
    outbox_events.c.type,
).join(outbox_events, outbox_events.c.id == webhook_deliveries.c.outbox_id)


async def list_deliveries(conn: Connection, *, endpoint_id: int, first: int) -> list[DeliveryRow]:
    """An endpoint's deliveries, newest first."""
    rows = await conn.fetch_all(
        _DELIVERIES.where(webhook_deliveries.c.endpoint_id == endpoint_id)
        .order_by(webhook_deliveries.c.id.desc())
        .limit(first)
    )
    return [delivery_row(row) for row in rows]


async def redeliver(conn: Connection, *, delivery_id: int, now: datetime) -> DeliveryRow | None:
    """Send a delivery again now (its attempts so far are kept)."""
    await conn.execute(
        webhook_deliveries.update()
        .where(webhook_deliveries.c.id == delivery_id)
        .values(status=PENDING, next_attempt_at=now, completed_at=None)
    )
    row = await conn.fetch_one(_DELIVERIES.where(webhook_deliveries.c.id == delivery_id))
    return delivery_row(row) if row else None
