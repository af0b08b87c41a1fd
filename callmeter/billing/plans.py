"""Pricing plans and the usage charge of a month under each. Pure: values in, values out.

A month's usage charge is the plan applied to the month's total billable seconds, computed exactly
and rounded half-up to the cent once. Billable seconds are per call: at least the plan's minimum,
rounded up to its billing increment (a call of 0 s is not billed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from callmeter.billing.meters import MeterError, MeterRate, validate_meter_rates
from callmeter.billing.money import EXACT, per_minute, round_cents
from callmeter.inputs import is_one_line
from callmeter.months import Month


class PlanKind(StrEnum):
    PAY_AS_YOU_GO = "PAY_AS_YOU_GO"
    GRADUATED = "GRADUATED"  # each minute priced by the tier it falls in
    VOLUME = "VOLUME"  # every minute priced by the tier the month's total reaches
    SUBSCRIPTION = "SUBSCRIPTION"  # a monthly fee with included minutes, then an overage rate


# Bounds that keep every input inside the columns that store it and the sums made from it.
MAX_AMOUNT = Decimal(1_000_000)  # a rate per minute or a monthly fee, in USD
MAX_MINUTES = 1_000_000_000  # included minutes and tier bounds (an INTEGER column)


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class Tier:
    up_to_minutes: int | None  # cumulative upper bound; None: no upper bound
    rate_per_minute: Decimal


@dataclass(frozen=True)
class Plan:
    name: str
    kind: PlanKind
    rate_per_minute: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    monthly_fee_usd: Decimal = Decimal(0)
    included_minutes: int = 0
    overage_rate_per_minute: Decimal | None = None
    billing_increment_seconds: int = 1
    minimum_billable_seconds: int = 0
    id: int | None = None
    meter_rates: tuple[MeterRate, ...] = ()  # what usage events of each meter cost


# The id the default plan (pay-as-you-go at PRICE_PER_MINUTE, not stored) goes by in the API.
DEFAULT_PLAN_ID = "default"

# A user's plan assignments as (from month, plan; None: back to the default plan), oldest first.
Schedule = Sequence[tuple[Month, Plan | None]]


def plan_in_force(schedule: Schedule, month: Month, default: Plan) -> Plan:
    """The plan billing `month` by a schedule: the latest assignment starting on or before it,
    else the default plan."""
    in_force = [plan for start, plan in schedule if start <= month]
    return (in_force[-1] if in_force else None) or default


def pay_as_you_go(rate_per_minute: Decimal, name: str = "Pay as you go") -> Plan:
    return Plan(name=name, kind=PlanKind.PAY_AS_YOU_GO, rate_per_minute=rate_per_minute)


def validate_plan(plan: Plan) -> Plan:
    """The plan, or a PlanError naming the first problem."""
    if not plan.name.strip() or len(plan.name) > 200:
        raise PlanError("a plan needs a name of 1 to 200 characters")
    if not is_one_line(plan.name):
        raise PlanError("a plan's name must not contain control characters or line breaks")
    if not 1 <= plan.billing_increment_seconds <= 3600:
        raise PlanError("billingIncrementSeconds must be between 1 and 3600")
    if not 0 <= plan.minimum_billable_seconds <= 86400:
        raise PlanError("minimumBillableSeconds must be between 0 and 86400")
    tiered = plan.kind in (PlanKind.GRADUATED, PlanKind.VOLUME)
    subscription = plan.kind is PlanKind.SUBSCRIPTION
    if (plan.rate_per_minute is not None) != (plan.kind is PlanKind.PAY_AS_YOU_GO):
        raise PlanError("ratePerMinute is required for PAY_AS_YOU_GO and only for it")
    if bool(plan.tiers) != tiered:
        raise PlanError("tiers are required for GRADUATED and VOLUME plans and only for them")
    if not subscription and (
        plan.monthly_fee_usd or plan.included_minutes or plan.overage_rate_per_minute is not None
    ):
        raise PlanError("monthlyFeeUsd, includedMinutes and overageRatePerMinute are for SUBSCRIPTION only")
    if subscription and plan.overage_rate_per_minute is None:
        raise PlanError("a SUBSCRIPTION plan needs overageRatePerMinute")
    if not 0 <= plan.included_minutes <= MAX_MINUTES:
        raise PlanError(f"includedMinutes must be between 0 and {MAX_MINUTES}")
    amounts = {
        "ratePerMinute": plan.rate_per_minute,
        "overageRatePerMinute": plan.overage_rate_per_minute,
        "monthlyFeeUsd": plan.monthly_fee_usd,
        **{f"tiers[{i}].ratePerMinute": tier.rate_per_minute for i, tier in enumerate(plan.tiers)},
    }
    for field, amount in amounts.items():
        if amount is not None and (not amount.is_finite() or amount < 0):
            raise PlanError(f"{field} must be a finite amount, not negative")
        if amount is not None and amount > MAX_AMOUNT:
            raise PlanError(f"{field} must be at most {MAX_AMOUNT}")
    if plan.monthly_fee_usd != round_cents(plan.monthly_fee_usd):
        raise PlanError("monthlyFeeUsd must be whole cents, e.g. 49.00")
    if tiered:
        _validate_tiers(plan.tiers)
    try:
        validate_meter_rates(plan.meter_rates)
    except MeterError as exc:
        raise PlanError(str(exc)) from None
    return plan


def _validate_tiers(tiers: tuple[Tier, ...]) -> None:
    if tiers[-1].up_to_minutes is not None:
        raise PlanError("the last tier must have no upper bound (upToMinutes: null)")
    bounds = [tier.up_to_minutes for tier in tiers[:-1]]
    if any(bound is None for bound in bounds):
        raise PlanError("only the last tier may have no upper bound")
    if any(not 0 < bound <= MAX_MINUTES for bound in bounds if bound is not None):
        raise PlanError(f"tier bounds must be between 1 and {MAX_MINUTES} minutes")
    if bounds != sorted(set(bounds)):  # type: ignore[type-var]
        raise PlanError("tier bounds must be strictly increasing")


def billable_seconds(plan: Plan, duration_seconds: int) -> int:
    if duration_seconds <= 0:
        return 0
    seconds = max(duration_seconds, plan.minimum_billable_seconds)
    increment = plan.billing_increment_seconds
    return -(-seconds // increment) * increment


def tier_spans(tiers: tuple[Tier, ...], seconds: int) -> list[tuple[int, int, Tier]]:
    """(first second, seconds in this tier, tier) for each tier the `seconds` reach into."""
    spans, start = [], 0
    for tier in tiers:
        end = seconds if tier.up_to_minutes is None else min(seconds, tier.up_to_minutes * 60)
        if end > start:
            spans.append((start, end - start, tier))
        if tier.up_to_minutes is None or end >= seconds:
            break
        start = tier.up_to_minutes * 60
    return spans


def volume_tier(tiers: tuple[Tier, ...], seconds: int) -> Tier:
    """The tier a month's total reaches; a total exactly at a bound stays in the lower tier."""
    for tier in tiers:
        if tier.up_to_minutes is None or seconds <= tier.up_to_minutes * 60:
            return tier
    return tiers[-1]


def overage_seconds(plan: Plan, seconds: int) -> int:
    return max(0, seconds - plan.included_minutes * 60)


def exact_usage_charge(plan: Plan, seconds: int) -> Decimal:
    """The month's usage charge before rounding."""
    if plan.kind is PlanKind.PAY_AS_YOU_GO:
        return per_minute(plan.rate_per_minute or Decimal(0), seconds)
    if plan.kind is PlanKind.GRADUATED:
        total = Decimal(0)
        for _, span, tier in tier_spans(plan.tiers, seconds):
            total = EXACT.add(total, per_minute(tier.rate_per_minute, span))
        return total
    if plan.kind is PlanKind.VOLUME:
        return (
            per_minute(volume_tier(plan.tiers, seconds).rate_per_minute, seconds) if seconds else Decimal(0)
        )
    return per_minute(plan.overage_rate_per_minute or Decimal(0), overage_seconds(plan, seconds))


def usage_charge(plan: Plan, billable_seconds: int) -> Decimal:
    """The usage charge of a month with that many billable seconds, rounded half-up to the cent."""
    return round_cents(exact_usage_charge(plan, billable_seconds))


def fixed_fee(plan: Plan) -> Decimal:
    return round_cents(plan.monthly_fee_usd) if plan.kind is PlanKind.SUBSCRIPTION else Decimal("0.00")
