"""Monthly usage as the customer is billed for it, and a month's usage per agent."""

from __future__ import annotations

from callmeter.billing.plans import plan_in_force
from callmeter.billing.usage import MAX_HISTORY_MONTHS, MonthSummary, MonthTotals, months_from, summarize
from callmeter.db import calls, plans, usage
from callmeter.errors import BadInputError
from callmeter.months import Month
from callmeter.resolvers.services import Services
from callmeter.rows import AgentUsageRow


async def month_usage(services: Services, *, user_id: int, month: Month) -> MonthSummary:
    async with services.db.connection() as conn:
        totals = await usage.fetch_month(conn, user_id=user_id, month=month)
        plan = await plans.plan_for_month(conn, user_id=user_id, month=month)
    return summarize(totals, plan or services.default_plan)


async def current_usage(services: Services, *, user_id: int) -> MonthSummary:
    return await month_usage(services, user_id=user_id, month=Month.current())


async def history(
    services: Services, *, user_id: int, first: Month | None, last: Month | None
) -> list[MonthSummary]:
    """Every month from `first` (default: the first with usage) to `last` (default: this month)."""
    last = last or Month.current()
    async with services.db.connection() as conn:
        rows = {
            row.month: row for row in await usage.fetch_months(conn, user_id=user_id, first=first, last=last)
        }
        schedule = await plans.plan_schedule(conn, user_id=user_id)
    first = first or min(rows, default=last)
    if first > last:
        raise BadInputError("history: `from` is after `to`")
    if (last.year - first.year) * 12 + last.month - first.month >= MAX_HISTORY_MONTHS:
        raise BadInputError(f"history spans more than {MAX_HISTORY_MONTHS} months")
    return [
        summarize(
            rows.get(month) or MonthTotals.empty(user_id, month),
            plan_in_force(schedule, month, services.default_plan),
        )
        for month in months_from(first, last)
    ]


async def agent_usage(services: Services, *, user_id: int, month: Month | None) -> list[AgentUsageRow]:
    """Completed calls of a month (default: this month) per agent, most minutes first."""
    async with services.db.connection() as conn:
        return await calls.usage_by_agent(conn, user_id=user_id, month=month or Month.current())
