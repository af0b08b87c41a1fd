"""The transactional outbox: events written in the transaction that caused them, one delivery per
subscribed endpoint.

`enqueue` runs in the caller's transaction: a change that rolls back leaves no event; the sender
(workers/deliveries.py, db/deliveries.py) sends it after commit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select

from callmeter.db.calls import fetch_calls_by_ids, with_meters
from callmeter.db.connection import Connection
from callmeter.db.deliveries import PENDING
from callmeter.db.prepared import Prepared
from callmeter.db.scope import batch_scope
from callmeter.db.webhook_tables import outbox_events, webhook_deliveries, webhook_endpoints
from callmeter.notifications import EventType, call_data, event_body, new_event_id

_SUBSCRIBED = Prepared(
    select(webhook_endpoints.c.id).where(
        webhook_endpoints.c.deleted_at.is_(None),
        webhook_endpoints.c.disabled.is_(False),
        webhook_endpoints.c.events.like(bindparam("pattern")),
    )
)
_EVENT = Prepared(
    outbox_events.insert().returning(outbox_events.c.id),
    columns=("event_id", "type", "user_id", "body", "created_at"),
)
_DELIVERY = Prepared(
    webhook_deliveries.insert(),
    columns=("endpoint_id", "outbox_id", "user_id", "status", "attempts", "next_attempt_at", "created_at"),
)


async def _subscribed(conn: Connection, *, pattern: str) -> list[Any]:
    """The endpoints subscribed to an event type; read once by a batch of callbacks."""
    scope = batch_scope()
    if scope is None:
        return await _SUBSCRIBED.fetch_all(conn, pattern=pattern)
    if pattern not in scope.subscribed:
        scope.subscribed[pattern] = await _SUBSCRIBED.fetch_all(conn, pattern=pattern)
    return scope.subscribed[pattern]


async def enqueue(
    conn: Connection,
    *,
    type: EventType,
    user_id: int,
    data: dict[str, Any] | Callable[[], Awaitable[dict[str, Any]]],
    now: datetime,
) -> str | None:
    """Write the event for every endpoint subscribed to its type now; its id (None: nobody listens,
    and `data`, if a function, is not even read)."""
    endpoints = await _subscribed(conn, pattern=f"%,{type},%")
    if not endpoints:
        return None
    if callable(data):
        data = await data()
    event_id = new_event_id()
    body = event_body(event_id=event_id, type=type, user_id=user_id, data=data, at=now)
    outbox_id = await _EVENT.fetch_val(
        conn, event_id=event_id, type=str(type), user_id=user_id, body=body, created_at=now
    )
    for endpoint in endpoints:
        await _DELIVERY.execute(
            conn,
            endpoint_id=endpoint["id"],
            outbox_id=outbox_id,
            user_id=user_id,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    return event_id


async def enqueue_call_event(
    conn: Connection, *, type: EventType, user_id: int, call_id: int, now: datetime
) -> None:
    """`call.completed` / `call.terminated` with the call as it is now in this transaction."""

    async def data() -> dict[str, Any]:
        (call,) = await with_meters(conn, await fetch_calls_by_ids(conn, ids=[call_id]))
        return call_data(call)

    await enqueue(conn, type=type, user_id=user_id, data=data, now=now)
