"""`webhook_events`: every distinct Twilio callback, kept for audit, re-rating and admins."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from callmeter.call_lifecycle import StatusCallback
from callmeter.db.connection import Connection
from callmeter.db.prepared import Prepared
from callmeter.db.tables import webhook_events
from callmeter.db.types import to_utc
from callmeter.rows import WebhookEventRow


def _event_row(row: Any) -> WebhookEventRow:
    sequence = row["sequence_number"]
    return WebhookEventRow(
        row["id"],
        row["call_sid"],
        None if sequence < 0 else sequence,
        row["call_status"],
        to_utc(row["event_at"]),
        to_utc(row["received_at"]),
        json.loads(row["payload"]),
    )


_INSERT_EVENT = Prepared(
    insert(webhook_events)
    .on_conflict_do_nothing(index_elements=["call_sid", "sequence_number", "call_status"])
    .returning(webhook_events.c.id),
    columns=(
        "call_sid",
        "sequence_number",
        "call_status",
        "event_at",
        "received_at",
        "user_id",
        "agent_id",
        "payload",
    ),
)


async def insert_event(
    conn: Connection,
    *,
    event: StatusCallback,
    form: Mapping[str, str],
    user_id: int | None,
    agent_id: int | None,
) -> int | None:
    """Store a callback once; the new row's id, or None when it was stored before."""
    return await _INSERT_EVENT.fetch_val(
        conn,
        call_sid=event.call_sid,
        sequence_number=-1 if event.sequence_number is None else event.sequence_number,
        call_status=event.call_status,
        event_at=event.timestamp,
        received_at=datetime.now(UTC),
        user_id=user_id,
        agent_id=agent_id,
        payload=json.dumps(dict(form), separators=(",", ":")),
    )


async def list_unattributed(conn: Connection, *, limit: int) -> list[WebhookEventRow]:
    """The newest callbacks that matched no agent."""
    query = (
        select(webhook_events)
        .where(webhook_events.c.user_id.is_(None))
        .order_by(webhook_events.c.id.desc())
        .limit(limit)
    )
    return [_event_row(row) for row in await conn.fetch_all(query)]
