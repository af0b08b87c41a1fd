"""`callmeter plan add|assign|list`: pricing plans and who is billed by which."""

from __future__ import annotations

import click

from callmeter.billing.plans import DEFAULT_PLAN_ID, PlanKind
from callmeter.cli.params import ID, MONTH, Parsed, with_services
from callmeter.inputs import digits
from callmeter.months import Month
from callmeter.resolvers import plans

PLAN_ID = Parsed(f"ID|{DEFAULT_PLAN_ID}", plans.parse_plan_id)


def parse_tier(text: str) -> tuple[int | None, str]:
    bound, sep, rate = text.partition(":")
    if not sep or not rate:
        raise click.BadParameter(
            f"{text!r} is not UPTO:RATE (e.g. 500:0.06, or max:0.02 for the last)", param_hint="--tier"
        )
    if bound in ("max", "inf", ""):
        return None, rate
    minutes = digits(bound, max_digits=18)
    if minutes is None:
        raise click.BadParameter(f"{bound!r} is not a whole number of minutes", param_hint="--tier")
    return minutes, rate


def parse_meter(text: str) -> tuple[str, str, str]:
    meter, unit_size, rate = (text.split(":") + ["", ""])[:3]
    if not meter or not unit_size or not rate or text.count(":") != 2:
        raise click.BadParameter(
            f"{text!r} is not METER:UNIT_SIZE:RATE (e.g. llm_tokens:1000:0.002)", param_hint="--meter"
        )
    return meter, unit_size, rate


@click.group()
def plan() -> None:
    """Manage pricing plans."""


@plan.command("add")
@click.option("--name", required=True)
@click.option(
    "--kind", required=True, type=click.Choice([kind.value for kind in PlanKind], case_sensitive=False)
)
@click.option("--rate", help="Rate per minute (PAY_AS_YOU_GO).")
@click.option("--tier", "tiers", multiple=True, help="UPTO:RATE, repeatable; max:RATE for the last tier.")
@click.option("--fee", help="Monthly fee in USD (SUBSCRIPTION).")
@click.option("--included", type=click.IntRange(min=0), help="Included minutes (SUBSCRIPTION).")
@click.option("--overage", help="Overage rate per minute (SUBSCRIPTION).")
@click.option("--increment", type=int, default=1, show_default=True, help="Billing increment, seconds.")
@click.option("--minimum", type=int, default=0, show_default=True, help="Minimum billable seconds a call.")
@click.option(
    "--meter",
    "meters",
    multiple=True,
    help="METER:UNIT_SIZE:RATE, repeatable: RATE per UNIT_SIZE units (e.g. llm_tokens:1000:0.002).",
)
@click.pass_context
def plan_add(
    ctx: click.Context,
    name: str,
    kind: str,
    rate: str | None,
    tiers: tuple[str, ...],
    fee: str | None,
    included: int | None,
    overage: str | None,
    increment: int,
    minimum: int,
    meters: tuple[str, ...],
) -> None:
    """Create a pricing plan and print its id."""
    new_plan = plans.build_plan(
        name=name,
        kind=kind.upper(),
        rate_per_minute=rate,
        tiers=[parse_tier(tier) for tier in tiers],
        monthly_fee_usd=fee,
        included_minutes=included,
        overage_rate_per_minute=overage,
        billing_increment_seconds=increment,
        minimum_billable_seconds=minimum,
        meter_rates=[parse_meter(meter) for meter in meters],
    )
    created = with_services(ctx, lambda services: plans.create_plan(services, new_plan))
    click.echo(f"plan {created.id} ({created.name}, {created.kind})")


@plan.command("assign")
@click.option("--user", "user_id", type=ID, required=True)
@click.option(
    "--plan", "plan_id", type=PLAN_ID, required=True, help="A plan's id, or default (PRICE_PER_MINUTE)."
)
@click.option("--from", "from_month", type=MONTH, required=True, help="First month billed by it.")
@click.pass_context
def plan_assign(ctx: click.Context, user_id: int, plan_id: int | None, from_month: Month) -> None:
    """Bill a user by a plan from a month on (re-rates that month's calls and later ones)."""
    assigned = with_services(
        ctx,
        lambda services: plans.assign_plan(services, user_id=user_id, plan_id=plan_id, from_month=from_month),
    )
    shown = DEFAULT_PLAN_ID if assigned.id is None else assigned.id
    click.echo(f"user {user_id} is billed by plan {shown} ({assigned.name}) from {from_month}")


@plan.command("list")
@click.pass_context
def plan_list(ctx: click.Context) -> None:
    """List the pricing plans."""
    for item in with_services(ctx, plans.list_plans):
        click.echo(f"{item.id}\t{item.kind}\t{item.name}")
