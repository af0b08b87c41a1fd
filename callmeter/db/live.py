"""What a live update says, and the table it can be recovered from after a missed notification."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select, text

from callmeter.call_lifecycle import CallEventKind, CallStatus
from callmeter.db.connection import Connection
from callmeter.db.prepared import Prepared
from callmeter.db.tables import call_usage, webhook_events
from callmeter.months import Month

CHANNEL = "callmeter_live"


@dataclass(frozen=True)
class LiveEvent:
    """A committed change to one call. Ids only: subscribers re-read what they may see."""

    user_id: int
    call_id: int
    kind: CallEventKind
    month: Month | None  # set when a completed call changed this month's usage
    event_id: int  # the webhook event that caused it: where catch-up resumes

    def to_payload(self) -> str:
        month = None if self.month is None else str(self.month)
        fields = [self.user_id, self.call_id, str(self.kind), month, self.event_id]
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def from_payload(cls, payload: str) -> LiveEvent:
        user_id, call_id, kind, month, event_id = json.loads(payload)
        return cls(
            int(user_id), int(call_id), CallEventKind(kind), month and Month.stored(month), int(event_id)
        )


_NOTIFY = Prepared(text("SELECT pg_notify(:channel, :payload)"))


async def notify(conn: Connection, event: LiveEvent) -> None:
    """Announce a change; PostgreSQL delivers it to listeners only if the transaction commits."""
    await _NOTIFY.execute(conn, channel=CHANNEL, payload=event.to_payload())


_NOTIFY_MANY = Prepared(
    text("SELECT pg_notify(:channel, payload) FROM unnest(CAST(:payloads AS text[])) AS payload")
)


async def notify_many(conn: Connection, events: list[LiveEvent]) -> None:
    """Announce several changes in one statement."""
    if events:
        await _NOTIFY_MANY.execute(conn, channel=CHANNEL, payloads=[event.to_payload() for event in events])


async def changes_since(conn: Connection, *, event_id: int, limit: int = 10_000) -> list[LiveEvent]:
    """The calls changed by events stored after `event_id`, as they stand now (for catch-up)."""
    query = (
        select(
            webhook_events.c.id,
            call_usage.c.id.label("call_id"),
            call_usage.c.user_id,
            call_usage.c.status,
            call_usage.c.month,
        )
        .join(call_usage, call_usage.c.call_sid == webhook_events.c.call_sid)
        .where(webhook_events.c.id > event_id)
        .order_by(webhook_events.c.id)
        .limit(limit)
    )
    events = []
    for row in await conn.fetch_all(query):
        status = CallStatus(row["status"])
        events.append(
            LiveEvent(
                user_id=row["user_id"],
                call_id=row["call_id"],
                kind=CallEventKind.UPDATED if status is CallStatus.ACTIVE else CallEventKind.ENDED,
                month=Month.stored(row["month"]) if status is CallStatus.COMPLETED else None,
                event_id=row["id"],
            )
        )
    return events


async def last_event_id(conn: Connection) -> int:
    return (
        await conn.fetch_val(select(webhook_events.c.id).order_by(webhook_events.c.id.desc()).limit(1)) or 0
    )
