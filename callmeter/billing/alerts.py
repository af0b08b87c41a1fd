"""Usage alerts: the metrics a threshold is set on, and whether a month has reached one. Pure."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from callmeter.billing.plans import PlanKind
from callmeter.billing.usage import MonthSummary

MAX_THRESHOLD = Decimal(1_000_000_000)


class AlertMetric(StrEnum):
    SPEND_USD = "SPEND_USD"  # the month's totalCostUsd
    MINUTES = "MINUTES"  # the month's totalMinutes
    INCLUDED_MINUTES_PERCENT = "INCLUDED_MINUTES_PERCENT"  # billable minutes over a plan's included ones


class AlertError(ValueError):
    pass


def check_threshold(threshold: Decimal) -> Decimal:
    if not threshold.is_finite() or threshold <= 0 or threshold > MAX_THRESHOLD:
        raise AlertError(f"threshold must be more than 0 and at most {MAX_THRESHOLD}, got {threshold}")
    exponent = threshold.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        raise AlertError("threshold must have at most 6 decimal places")
    return threshold


def metric_value(metric: AlertMetric, summary: MonthSummary, billable_seconds: int) -> Decimal | None:
    """The month's value of the metric; None where it means nothing (no included minutes)."""
    if metric is AlertMetric.SPEND_USD:
        return summary.total_cost_usd
    if metric is AlertMetric.MINUTES:
        return summary.total_minutes
    plan = summary.plan
    if plan.kind is not PlanKind.SUBSCRIPTION or not plan.included_minutes:
        return None
    return Decimal(billable_seconds) / 60 / plan.included_minutes * 100


def reached(metric: AlertMetric, threshold: Decimal, summary: MonthSummary, billable_seconds: int) -> bool:
    value = metric_value(metric, summary, billable_seconds)
    return value is not None and value >= threshold
