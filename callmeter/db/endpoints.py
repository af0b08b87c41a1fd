"""`webhook_endpoints`: where events are sent, the types each receives, its sealed secret."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from callmeter.db.connection import Connection
from callmeter.db.webhook_tables import webhook_endpoints
from callmeter.rows import EndpointRow


def _endpoint(row: Mapping[str, Any]) -> EndpointRow:
    events = tuple(name for name in row["events"].split(",") if name)
    return EndpointRow(
        row["id"], row["url"], events, row["description"], bool(row["disabled"]), row["secret"]
    )


async def insert_endpoint(
    conn: Connection,
    *,
    url: str,
    events: Sequence[str],
    description: str | None,
    sealed_secret: str,
    now: datetime,
) -> EndpointRow:
    endpoint_id = await conn.fetch_val(
        webhook_endpoints.insert()
        .values(
            url=url,
            events="," + ",".join(events) + ",",
            description=description,
            secret=sealed_secret,
            disabled=False,
            created_at=now,
        )
        .returning(webhook_endpoints.c.id)
    )
    found = await fetch_endpoint(conn, endpoint_id=endpoint_id)
    assert found is not None
    return found


async def fetch_endpoint(conn: Connection, *, endpoint_id: int) -> EndpointRow | None:
    row = await conn.fetch_one(
        select(webhook_endpoints).where(
            webhook_endpoints.c.id == endpoint_id, webhook_endpoints.c.deleted_at.is_(None)
        )
    )
    return _endpoint(row) if row else None


async def list_endpoints(conn: Connection) -> list[EndpointRow]:
    rows = await conn.fetch_all(
        select(webhook_endpoints)
        .where(webhook_endpoints.c.deleted_at.is_(None))
        .order_by(webhook_endpoints.c.id)
    )
    return [_endpoint(row) for row in rows]


async def delete_endpoint(conn: Connection, *, endpoint_id: int, now: datetime) -> bool:
    """Stop sending to it (its deliveries stay, for the record); False if there is none."""
    found = await fetch_endpoint(conn, endpoint_id=endpoint_id)
    if found is None:
        return False
    await conn.execute(
        webhook_endpoints.update().where(webhook_endpoints.c.id == endpoint_id).values(deleted_at=now)
    )
    return True
