"""`callmeter credits grant` and `callmeter limits set`: a customer's prepaid credit and limits."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import click

from callmeter.billing.limits import Limits
from callmeter.cli.customers import describe
from callmeter.cli.params import ID, Parsed, with_services
from callmeter.errors import BadInputError
from callmeter.resolvers import credits as credit_resolvers


def parse_amount(text: str) -> Decimal:
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise BadInputError(f"{text[:30]!r} is not an amount in USD, like 25.00") from None
    if not amount.is_finite():
        raise BadInputError(f"{text[:30]!r} is not a finite amount")
    return amount


AMOUNT = Parsed("USD", parse_amount)


@click.group()
def credits() -> None:
    """Prepaid credits."""


@credits.command("grant")
@click.option("--user", "user_id", type=ID, required=True)
@click.option("--amount", type=AMOUNT, required=True, help="USD, whole cents, e.g. 25.00.")
@click.option("--key", required=True, help="Idempotency key: the same key again grants nothing more.")
@click.option("--note", default=None, help="Description shown with the grant.")
@click.pass_context
def credits_grant(ctx: click.Context, user_id: int, amount: Decimal, key: str, note: str | None) -> None:
    """Add credit to a customer's prepaid balance (once per key)."""
    grant = with_services(
        ctx,
        lambda services: credit_resolvers.grant_credits(
            services, user_id=user_id, amount=amount, key=key, description=note
        ),
    )
    click.echo(
        f"grant {grant.id} of ${grant.amount_usd} to customer {grant.user_id}: "
        f"balance ${grant.balance_after_usd}"
    )


@click.group()
def limits() -> None:
    """Spending limits."""


@limits.command("set")
@click.option("--user", "user_id", type=ID, required=True)
@click.option("--spend-cap", type=AMOUNT, default=None, help="Monthly spend cap in USD.")
@click.option("--max-concurrent", type=int, default=None, help="Most calls in progress at once.")
@click.option("--enforce/--no-enforce", default=False, help="End calls in progress at a limit.")
@click.option("--low-balance", type=AMOUNT, default=None, help="Balance that sends balance.low, USD.")
@click.pass_context
def limits_set(
    ctx: click.Context,
    user_id: int,
    spend_cap: Decimal | None,
    max_concurrent: int | None,
    enforce: bool,
    low_balance: Decimal | None,
) -> None:
    """Replace all of a customer's limits (an option left out is no limit)."""
    wanted = Limits(
        monthly_spend_cap_usd=spend_cap,
        max_concurrent_calls=max_concurrent,
        enforce=enforce,
        low_balance_usd=low_balance,
    )
    row = with_services(
        ctx, lambda services: credit_resolvers.set_limits(services, user_id=user_id, limits=wanted)
    )
    click.echo(describe(row))
