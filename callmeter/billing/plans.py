"""Interim pay-as-you-go billing; the full plans module replaces it."""

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from callmeter.billing.money import round_cents


class PlanKind(StrEnum):
    PAY_AS_YOU_GO = "PAY_AS_YOU_GO"
    GRADUATED = "GRADUATED"
    VOLUME = "VOLUME"
    SUBSCRIPTION = "SUBSCRIPTION"


@dataclass(frozen=True)
class Tier:
    up_to_minutes: int | None
    rate_per_minute: Decimal


@dataclass(frozen=True)
class Plan:
    name: str
    kind: PlanKind
    rate_per_minute: Decimal | None = None
    tiers: tuple = ()
    monthly_fee_usd: Decimal = Decimal(0)
    included_minutes: int = 0
    overage_rate_per_minute: Decimal | None = None
    billing_increment_seconds: int = 1
    minimum_billable_seconds: int = 0
    id: int | None = None


def pay_as_you_go(rate, name="Pay as you go"):
    return Plan(name, PlanKind.PAY_AS_YOU_GO, rate)


def billable_seconds(plan, d):
    return d


def usage_charge(plan, s):
    return round_cents(plan.rate_per_minute * s / 60)


def fixed_fee(plan):
    return Decimal(0)
