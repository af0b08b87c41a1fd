"""Monthly usage as the customer is billed: the plan in force, the usage charge and the fixed fee."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from callmeter.billing.money import minutes_of
from callmeter.billing.plans import Plan, fixed_fee, plan_in_force
from callmeter.db import plans, usage
from callmeter.db.connection import Connection
from callmeter.db.usage import MonthlyUsageRow
from callmeter.errors import BadInputError
from callmeter.months import Month

MAX_HISTORY_MONTHS = 600


@dataclass(frozen=True)
class MonthSummary:
    month: str
    total_calls: int
    total_seconds: int
    total_minutes: Decimal
    plan: Plan
    usage_charge_usd: Decimal
    fixed_fee_usd: Decimal

    @property
    def total_cost_usd(self) -> Decimal:
        return self.fixed_fee_usd + self.usage_charge_usd


def summarize(row: MonthlyUsageRow, plan: Plan) -> MonthSummary:
    return MonthSummary(
        month=row.month,
        total_calls=row.total_calls,
        total_seconds=row.total_seconds,
        total_minutes=minutes_of(row.total_seconds),
        plan=plan,
        usage_charge_usd=row.usage_charge_usd,
        fixed_fee_usd=fixed_fee(plan),
    )


async def month_summary(conn: Connection, *, user_id: int, month: Month, default_plan: Plan) -> MonthSummary:
    row = await usage.fetch_month(conn, user_id=user_id, month=str(month))
    plan = await plans.plan_for_month(conn, user_id=user_id, month=str(month)) or default_plan
    return summarize(row, plan)


async def history(
    conn: Connection, *, user_id: int, first: Month | None, last: Month | None, default_plan: Plan
) -> list[MonthSummary]:
    """Every month from `first` (default: the first with usage) to `last` (default: this month)."""
    last = last or Month.current()
    rows = {
        row.month: row
        for row in await usage.fetch_months(
            conn, user_id=user_id, first=str(first) if first else None, last=str(last)
        )
    }
    if first is None:
        first = Month.parse(min(rows)) if rows else last
    if first > last:
        raise BadInputError("history: `from` is after `to`")
    months = [first]
    while months[-1] < last:
        months.append(months[-1].next())
        if len(months) > MAX_HISTORY_MONTHS:
            raise BadInputError(f"history spans more than {MAX_HISTORY_MONTHS} months")
    schedule = await plans.plan_schedule(conn, user_id=user_id, default_plan=default_plan)
    summaries = []
    for month in months:
        row = rows.get(str(month)) or MonthlyUsageRow.empty(user_id, str(month))
        summaries.append(summarize(row, plan_in_force(schedule, str(month), default_plan)))
    return summaries


async def billable_months(conn: Connection, *, user_id: int, last: Month, default_plan: Plan) -> list[str]:
    """The months up to `last` with usage or a fixed fee, oldest first (at most MAX_HISTORY_MONTHS)."""
    schedule = await plans.plan_schedule(conn, user_id=user_id, default_plan=default_plan)
    used = await usage.fetch_months(conn, user_id=user_id, last=str(last))
    calls = {row.month: row.total_calls for row in used}
    known = [start for start, _ in schedule if start <= str(last)] + list(calls)
    if not known:
        return []
    month = max(Month.parse(min(known)), Month(last.year - MAX_HISTORY_MONTHS // 12, last.month).next())
    billable = []
    while month <= last:
        if calls.get(str(month)) or fixed_fee(plan_in_force(schedule, str(month), default_plan)):
            billable.append(str(month))
        month = month.next()
    return billable
