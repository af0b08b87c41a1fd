"""Customers: the billing calendar every month of a user follows, and changing its zone.

A customer is seen first when something is stored for them (an agent, a call, a plan, a change of
zone); until then they are shown with the default zone (`BILLING_TIMEZONE`), and the zone they are
given when first seen is theirs for good: changing the variable later re-buckets nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from callmeter.db import customers
from callmeter.db.connection import Connection
from callmeter.errors import BadInputError
from callmeter.months import Calendar, Month, check_zone
from callmeter.resolvers.services import Services
from callmeter.rows import CustomerRow


async def calendar_of(conn: Connection, services: Services, *, user_id: int) -> Calendar:
    row = await customers.fetch_customer(conn, user_id=user_id)
    return row.calendar if row else services.settings.default_calendar


async def customer(services: Services, *, user_id: int) -> CustomerRow:
    async with services.db.connection() as conn:
        row = await customers.fetch_customer(conn, user_id=user_id)
    return row or CustomerRow(user_id, services.settings.default_calendar)


async def set_billing_timezone(
    services: Services, *, user_id: int, timezone: str, from_month: Month
) -> CustomerRow:
    """Bill the customer in `timezone` from the start of `from_month` (in that zone), a month later
    than their current one and not yet begun, so no recorded month is ever re-bucketed."""
    check_zone(timezone)
    async with services.db.transaction() as conn:
        row = await customers.ensure_customer(
            conn, user_id=user_id, calendar=services.settings.default_calendar, lock=True
        )
        now = datetime.now(UTC)
        current = row.calendar.current(now)
        if from_month <= current:
            raise BadInputError(f"fromMonth must be later than the customer's current month, {current}")
        changed = row.calendar.changed(timezone, from_month)
        if changed.starts_at(from_month) <= now:
            raise BadInputError(f"{from_month} has already begun in {timezone}: choose a later fromMonth")
        await customers.save_calendar(conn, user_id=user_id, calendar=changed)
    return CustomerRow(user_id, changed)
