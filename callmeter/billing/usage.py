"""A month's usage as the customer is billed for it: the totals, the plan in force, fee and charge. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from callmeter.billing.meters import MeterTotal, telephony
from callmeter.billing.money import minutes_of
from callmeter.billing.plans import Plan, Schedule, fixed_fee, plan_in_force
from callmeter.months import Month

MAX_HISTORY_MONTHS = 600


@dataclass(frozen=True)
class MonthTotals:
    """The roll-up of one user's completed calls in one month, as stored."""

    user_id: int
    month: Month
    total_calls: int
    total_seconds: int
    billable_seconds: int
    usage_charge_usd: Decimal

    @classmethod
    def empty(cls, user_id: int, month: Month) -> MonthTotals:
        return cls(user_id, month, 0, 0, 0, Decimal("0.00"))


@dataclass(frozen=True)
class MonthSummary:
    month: Month
    total_calls: int
    total_seconds: int
    total_minutes: Decimal
    plan: Plan
    usage_charge_usd: Decimal  # minutes and every meter
    fixed_fee_usd: Decimal
    billable_seconds: int = 0
    meters: tuple[MeterTotal, ...] = ()  # by name, when read with them

    @property
    def total_cost_usd(self) -> Decimal:
        return self.fixed_fee_usd + self.usage_charge_usd

    @property
    def by_meter(self) -> list[MeterTotal]:
        """The usage charge by component: the minutes (`telephony_minutes`), then each meter."""
        metered = sum((meter.charge_usd for meter in self.meters), start=Decimal("0.00"))
        return [telephony(self.billable_seconds, self.usage_charge_usd - metered), *self.meters]


def summarize(totals: MonthTotals, plan: Plan, meters: Sequence[MeterTotal] = ()) -> MonthSummary:
    return MonthSummary(
        month=totals.month,
        total_calls=totals.total_calls,
        total_seconds=totals.total_seconds,
        total_minutes=minutes_of(totals.total_seconds),
        plan=plan,
        usage_charge_usd=totals.usage_charge_usd,
        fixed_fee_usd=fixed_fee(plan),
        billable_seconds=totals.billable_seconds,
        meters=tuple(meters),
    )


def months_from(first: Month, last: Month) -> Iterable[Month]:
    month = first
    while month <= last:
        yield month
        month = month.next()


def billable_months(
    schedule: Schedule, used: Sequence[MonthTotals], *, last: Month, default_plan: Plan
) -> list[Month]:
    """The months up to `last` with usage (calls or metered events) or a fixed fee, oldest first (at
    most MAX_HISTORY_MONTHS)."""
    calls = {
        totals.month: totals.total_calls or totals.usage_charge_usd != 0
        for totals in used
        if totals.month <= last
    }
    known = [start for start, _ in schedule if start <= last] + list(calls)
    if not known:
        return []
    first = max(min(known), Month(last.year - MAX_HISTORY_MONTHS // 12, last.month).next())
    return [
        month
        for month in months_from(first, last)
        if calls.get(month) or fixed_fee(plan_in_force(schedule, month, default_plan))
    ]
