"""Interim pay-as-you-go billing; the full plans module replaces it."""

from dataclasses import dataclass
from decimal import Decimal

from callmeter.billing.plans import billable_seconds, usage_charge


@dataclass(frozen=True)
class CallCharge:
    billable_seconds: int
    cost: Decimal


def rate_call(plan, *, month_billable_before, duration_seconds):
    b = billable_seconds(plan, duration_seconds)
    return CallCharge(
        b, usage_charge(plan, month_billable_before + b) - usage_charge(plan, month_billable_before)
    )
