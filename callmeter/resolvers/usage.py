"""Monthly usage as the customer is billed for it, and a month's usage per agent."""

from __future__ import annotations

from callmeter.billing.plans import plan_in_force
from callmeter.billing.usage import MAX_HISTORY_MONTHS, MonthSummary, MonthTotals, months_from, summarize
from callmeter.db import calls, meter_billing, plans, usage
from callmeter.db.connection import Connection
from callmeter.errors import BadInputError
from callmeter.months import Month
from callmeter.resolvers.customers import calendar_of
from callmeter.resolvers.services import Services
from callmeter.rows import AgentUsageRow


async def _summary(conn: Connection, services: Services, *, user_id: int, month: Month) -> MonthSummary:
    totals = await usage.fetch_month(conn, user_id=user_id, month=month)
    plan = await plans.plan_for_month(conn, user_id=user_id, month=month)
    meters = await meter_billing.month_meters(conn, user_id=user_id, months=[month])
    return summarize(totals, plan or services.default_plan, meters.get(month, ()))


async def month_usage(services: Services, *, user_id: int, month: Month) -> MonthSummary:
    async with services.db.connection() as conn:
        return await _summary(conn, services, user_id=user_id, month=month)


async def current_usage(services: Services, *, user_id: int) -> MonthSummary:
    """This month in the customer's zone."""
    async with services.db.connection() as conn:
        month = (await calendar_of(conn, services, user_id=user_id)).current()
        return await _summary(conn, services, user_id=user_id, month=month)


async def history(
    services: Services, *, user_id: int, first: Month | None, last: Month | None
) -> list[MonthSummary]:
    """Every month from `first` (default: the first with usage) to `last` (default: this month)."""
    async with services.db.connection() as conn:
        last = last or (await calendar_of(conn, services, user_id=user_id)).current()
        rows = {
            row.month: row for row in await usage.fetch_months(conn, user_id=user_id, first=first, last=last)
        }
        schedule = await plans.plan_schedule(conn, user_id=user_id)
        meters = await meter_billing.month_meters(conn, user_id=user_id, months=list(rows))
    first = first or min(rows, default=last)
    if first > last:
        raise BadInputError("history: `from` is after `to`")
    if first.months_until(last) >= MAX_HISTORY_MONTHS:
        raise BadInputError(f"history spans more than {MAX_HISTORY_MONTHS} months")
    return [
        summarize(
            rows.get(month) or MonthTotals.empty(user_id, month),
            plan_in_force(schedule, month, services.default_plan),
            meters.get(month, ()),
        )
        for month in months_from(first, last)
    ]


async def agent_usage(services: Services, *, user_id: int, month: Month | None) -> list[AgentUsageRow]:
    """Completed calls of a month (default: this month) per agent, most minutes first."""
    async with services.db.connection() as conn:
        month = month or (await calendar_of(conn, services, user_id=user_id)).current()
        return await calls.usage_by_agent(conn, user_id=user_id, month=month)
