"""`usage_alerts`: a customer's thresholds (db/watch.py fires them)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from callmeter.db.connection import Connection
from callmeter.db.types import to_decimal
from callmeter.db.webhook_tables import usage_alerts
from callmeter.rows import AlertRow


def _alert(row: Mapping[str, Any]) -> AlertRow:
    return AlertRow(
        row["id"],
        row["user_id"],
        row["metric"],
        to_decimal(row["threshold"]),
        row["name"],
        row["last_fired_month"],
    )


async def insert_alert(
    conn: Connection, *, user_id: int, metric: str, threshold: Decimal, name: str | None, now: datetime
) -> AlertRow:
    alert_id = await conn.fetch_val(
        usage_alerts.insert()
        .values(user_id=user_id, metric=metric, threshold=threshold, name=name, created_at=now)
        .returning(usage_alerts.c.id)
    )
    row = await conn.fetch_one(select(usage_alerts).where(usage_alerts.c.id == alert_id))
    assert row is not None
    return _alert(row)


async def list_alerts(conn: Connection, *, user_id: int | None) -> list[AlertRow]:
    query = select(usage_alerts).order_by(usage_alerts.c.id)
    if user_id is not None:
        query = query.where(usage_alerts.c.user_id == user_id)
    return [_alert(row) for row in await conn.fetch_all(query)]


async def delete_alert(conn: Connection, *, alert_id: int) -> bool:
    found = await conn.fetch_val(select(usage_alerts.c.id).where(usage_alerts.c.id == alert_id))
    if found is None:
        return False
    await conn.execute(usage_alerts.delete().where(usage_alerts.c.id == alert_id))
    return True
