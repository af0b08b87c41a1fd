"""Adjustments: what changed in an already invoiced month, billed once on a later invoice. Pure.

A finalized invoice never changes. Whatever changes an invoiced month later (a late callback, a
re-rating after a plan change, another plan's fixed fee) is the month's whole charge now (fee and
usage, by the plan in force now) less all that its invoice and the adjustments after it billed, so
each change is billed exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from callmeter.billing.money import minutes_of
from callmeter.billing.plans import Plan, Schedule, plan_in_force
from callmeter.billing.usage import MonthTotals, summarize
from callmeter.months import Month


@dataclass(frozen=True)
class Adjustment:
    """A change to an invoiced month (`month`), billed on a later invoice; may be negative."""

    month: Month
    calls: int
    seconds: int
    billable_seconds: int
    amount_usd: Decimal
    plan_id: int | None  # the plan it was billed by; None: the default plan
    plan_name: str | None  # None: not recorded (stored before migration 0004)
    description: str = ""


@dataclass(frozen=True)
class InvoicedMonth:
    """What a finalized invoice billed for its own month."""

    invoice_id: int
    month: Month
    calls: int
    seconds: int
    billable_seconds: int
    total_usd: Decimal  # the invoice's total, adjustments for other months included
    plan_id: int | None
    plan_name: str
    credits_applied_usd: Decimal = Decimal(0)  # what prepaid credit paid of it


@dataclass(frozen=True)
class BilledUsage:
    """What has been billed for one month so far: its invoice plus later adjustments."""

    month: Month
    calls: int
    seconds: int
    billable_seconds: int
    charge_usd: Decimal  # the month's own charge: fixed fee plus usage
    plan_id: int | None  # the plan it was last billed by; None: the default plan
    plan_name: str | None


def billed_now(totals: MonthTotals, plan: Plan) -> BilledUsage:
    """What an invoice finalized now would bill for the month of `totals`."""
    return BilledUsage(
        totals.month,
        totals.total_calls,
        totals.total_seconds,
        totals.billable_seconds,
        summarize(totals, plan).total_cost_usd,
        plan.id,
        plan.name,
    )


def billed_usage(
    invoiced: Sequence[InvoicedMonth], adjustments: Sequence[tuple[int, Adjustment]]
) -> list[BilledUsage]:
    """For each invoiced month, what its invoice and the adjustments (invoice id, adjustment) after
    it billed. Adjustments come in the order they were finalized, so a month's last recorded plan is
    that of its latest adjustment."""
    carried: dict[int, Decimal] = {}  # by invoice: what it billed for other months
    later: dict[Month, list[Adjustment]] = {}  # by month: the adjustments billed for it
    for invoice_id, adjustment in adjustments:
        carried[invoice_id] = carried.get(invoice_id, Decimal(0)) + adjustment.amount_usd
        later.setdefault(adjustment.month, []).append(adjustment)
    result = []
    for invoice in invoiced:
        more = later.get(invoice.month, [])
        recorded = [(extra.plan_id, extra.plan_name) for extra in more if extra.plan_name is not None]
        plan_id, plan_name = ([(invoice.plan_id, invoice.plan_name)] + recorded)[-1]
        # The invoice's own charge is its charges less the adjustments it carried for other months.
        charged = invoice.total_usd + invoice.credits_applied_usd
        own = charged - carried.get(invoice.invoice_id, Decimal(0))
        result.append(
            BilledUsage(
                month=invoice.month,
                calls=invoice.calls + sum(extra.calls for extra in more),
                seconds=invoice.seconds + sum(extra.seconds for extra in more),
                billable_seconds=invoice.billable_seconds + sum(extra.billable_seconds for extra in more),
                charge_usd=own + sum((extra.amount_usd for extra in more), start=Decimal(0)),
                plan_id=plan_id,
                plan_name=plan_name,
            )
        )
    return result


def pending_adjustments(
    billed: Sequence[BilledUsage],
    used: Mapping[Month, MonthTotals],
    *,
    user_id: int,
    schedule: Schedule,
    default_plan: Plan,
) -> list[Adjustment]:
    """What changed in the billed months since they were billed, each described."""
    pending = []
    for month in billed:
        now = used.get(month.month) or MonthTotals.empty(user_id, month.month)
        plan = plan_in_force(schedule, month.month, default_plan)
        change = Adjustment(
            month=month.month,
            calls=now.total_calls - month.calls,
            seconds=now.total_seconds - month.seconds,
            billable_seconds=now.billable_seconds - month.billable_seconds,
            amount_usd=summarize(now, plan).total_cost_usd - month.charge_usd,
            plan_id=plan.id,
            plan_name=plan.name,
        )
        if change.calls or change.seconds or change.billable_seconds or change.amount_usd:
            pending.append(replace(change, description=describe(change, month)))
    return pending


def describe(change: Adjustment, billed: BilledUsage) -> str:
    changes = []
    if change.plan_id != billed.plan_id:
        changes.append(f"re-rated on plan {change.plan_name}")
    if change.calls or change.seconds:
        plural = "call" if abs(change.calls) == 1 else "calls"
        changes.append(f"{change.calls:+d} {plural}, {minutes_of(change.seconds):+} min after invoicing")
    return "; ".join(changes) or "re-rated after invoicing"
