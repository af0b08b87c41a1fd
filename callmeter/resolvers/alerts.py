"""Usage alerts: a customer's thresholds on the month's spend, minutes or share of included minutes,
each firing `usage.threshold_reached` once a month (db/watch.py). Creating and deleting: admins."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from callmeter.billing.alerts import AlertError, AlertMetric, check_threshold
from callmeter.db import alerts, customers
from callmeter.errors import BadInputError
from callmeter.inputs import is_one_line
from callmeter.resolvers.services import Services
from callmeter.rows import AlertRow


async def create_alert(
    services: Services, *, user_id: int, metric: AlertMetric, threshold: Decimal, name: str | None
) -> AlertRow:
    try:
        check_threshold(threshold)
    except AlertError as exc:
        raise BadInputError(str(exc)) from None
    if name is not None and (not name.strip() or len(name) > 200 or not is_one_line(name)):
        raise BadInputError("name must be one line of 1 to 200 characters")
    async with services.db.transaction() as conn:
        await customers.ensure_customer(conn, user_id=user_id, calendar=services.settings.default_calendar)
        return await alerts.insert_alert(
            conn, user_id=user_id, metric=str(metric), threshold=threshold, name=name, now=datetime.now(UTC)
        )


async def list_alerts(services: Services, *, user_id: int | None) -> list[AlertRow]:
    """One customer's alerts; every alert for None (the operator's CLI)."""
    async with services.db.connection() as conn:
        return await alerts.list_alerts(conn, user_id=user_id)


async def delete_alert(services: Services, *, alert_id: int) -> bool:
    async with services.db.transaction() as conn:
        return await alerts.delete_alert(conn, alert_id=alert_id)
