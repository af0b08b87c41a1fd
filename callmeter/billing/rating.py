"""Rating calls: each call costs what it adds to its month's usage charge.

cost = usage_charge(billable before + this call) - usage_charge(billable before), both rounded to the
cent, so the per-call costs of a month add up to the month's charge exactly, whatever the order. On a
VOLUME plan a call that lifts the month into a cheaper tier lowers the whole month's charge, so its
cost can be negative: that is what keeps the sum exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from callmeter.billing.plans import Plan, billable_seconds, usage_charge


@dataclass(frozen=True)
class CallCharge:
    billable_seconds: int
    cost: Decimal


def rate_call(plan: Plan, *, month_billable_before: int, duration_seconds: int) -> CallCharge:
    billable = billable_seconds(plan, duration_seconds)
    cost = usage_charge(plan, month_billable_before + billable) - usage_charge(plan, month_billable_before)
    return CallCharge(billable_seconds=billable, cost=cost)


def rate_month(plan: Plan, durations: Sequence[int]) -> list[CallCharge]:
    """Re-rate a month's calls in the order they completed."""
    charges, before = [], 0
    for duration in durations:
        charge = rate_call(plan, month_billable_before=before, duration_seconds=duration)
        charges.append(charge)
        before += charge.billable_seconds
    return charges
