"""Creating plans and assigning them: a month is billed by the plan in force for it."""

from __future__ import annotations

from decimal import Decimal

from callmeter.billing.meters import MeterRate
from callmeter.billing.money import MoneyError, parse_money
from callmeter.billing.plans import DEFAULT_PLAN_ID, Plan, PlanError, PlanKind, Tier, validate_plan
from callmeter.db import customers, plans
from callmeter.db.locks import lock_user_billing
from callmeter.db.rerating import rerate_months
from callmeter.errors import BadInputError, NotFoundError
from callmeter.inputs import parse_id
from callmeter.months import Month
from callmeter.resolvers.services import Services


def money_or_none(value: object, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        return parse_money(str(value))
    except MoneyError as exc:
        raise BadInputError(f"{name}: {exc}") from None


def build_plan(
    *,
    name: str,
    kind: str,
    rate_per_minute: object = None,
    tiers: list[tuple[int | None, object]] | None = None,
    monthly_fee_usd: object = None,
    included_minutes: int | None = None,
    overage_rate_per_minute: object = None,
    billing_increment_seconds: int = 1,
    minimum_billable_seconds: int = 0,
    meter_rates: list[tuple[str, object, object]] | None = None,
) -> Plan:
    """A validated plan from loosely typed input (GraphQL or the CLI); BAD_USER_INPUT otherwise."""
    try:
        plan_kind = PlanKind(kind)
    except ValueError:
        raise BadInputError(f"kind must be one of {', '.join(PlanKind)}") from None
    try:
        return validate_plan(
            Plan(
                name=name.strip(),
                kind=plan_kind,
                rate_per_minute=money_or_none(rate_per_minute, "ratePerMinute"),
                tiers=tuple(
                    Tier(bound, money_or_none(rate, "tiers.ratePerMinute") or Decimal(0))
                    for bound, rate in tiers or ()
                ),
                monthly_fee_usd=money_or_none(monthly_fee_usd, "monthlyFeeUsd") or Decimal(0),
                included_minutes=included_minutes or 0,
                overage_rate_per_minute=money_or_none(overage_rate_per_minute, "overageRatePerMinute"),
                billing_increment_seconds=billing_increment_seconds,
                minimum_billable_seconds=minimum_billable_seconds,
                meter_rates=tuple(
                    MeterRate(
                        meter,
                        money_or_none(unit_size, f"meterRates.{meter}.unitSize") or Decimal(0),
                        money_or_none(rate, f"meterRates.{meter}.ratePerUnit") or Decimal(0),
                    )
                    for meter, unit_size, rate in meter_rates or ()
                ),
            )
        )
    except PlanError as exc:
        raise BadInputError(str(exc)) from None


async def create_plan(services: Services, plan: Plan) -> Plan:
    async with services.db.transaction() as conn:
        return await plans.insert_plan(conn, plan=plan)


async def list_plans(services: Services) -> list[Plan]:
    async with services.db.connection() as conn:
        return await plans.list_plans(conn)


def parse_plan_id(value: object) -> int | None:
    """A stored plan's id, or None for "default", the PRICE_PER_MINUTE plan (which is not stored)."""
    return None if str(value).strip() == DEFAULT_PLAN_ID else parse_id(value, "planId")


async def assign_plan(services: Services, *, user_id: int, plan_id: int | None, from_month: Month) -> Plan:
    """Bill the user by the plan (None: the default) from `from_month` on, re-rating those months."""
    default_plan = services.default_plan
    async with services.db.transaction() as conn:
        await lock_user_billing(conn, user_id=user_id)
        await customers.ensure_customer(conn, user_id=user_id, calendar=services.settings.default_calendar)
        plan = default_plan if plan_id is None else await plans.fetch_plan(conn, plan_id=plan_id)
        if plan is None:
            raise NotFoundError(f"there is no plan {plan_id}")
        await plans.assign_plan(conn, user_id=user_id, plan_id=plan_id, from_month=from_month)
        await rerate_months(conn, user_id=user_id, from_month=from_month, default_plan=default_plan)
    return plan
