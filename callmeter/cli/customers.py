"""`callmeter customer show|timezone`: a customer's billing record and their billing time zone."""

from __future__ import annotations

from decimal import Decimal

import click

from callmeter.billing.money import format_usd
from callmeter.cli.params import ID, MONTH, with_services
from callmeter.months import Month
from callmeter.resolvers import customers
from callmeter.rows import CustomerRow


def _usd(amount: Decimal | None, none: str = "none") -> str:
    return none if amount is None else format_usd(amount)


def describe(row: CustomerRow) -> str:
    schedule = "; ".join(f"{name} from {start}" for start, name in row.calendar.zones)
    limits = row.limits
    calls = "none" if limits.max_concurrent_calls is None else str(limits.max_concurrent_calls)
    return "\n".join(
        [
            f"customer {row.user_id}",
            f"  billing time zone: {row.calendar.timezone_now()} ({schedule})",
            f"  balance: {_usd(row.balance_usd, 'postpaid (no credit granted)')}",
            f"  monthly spend cap: {_usd(limits.monthly_spend_cap_usd)}",
            f"  max concurrent calls: {calls}",
            f"  enforce: {'yes' if limits.enforce else 'no'}",
            f"  low balance: {_usd(limits.low_balance_usd)}",
        ]
    )


@click.group()
def customer() -> None:
    """Customers: billing time zone, balance and limits."""


@customer.command("show")
@click.option("--user", "user_id", type=ID, required=True)
@click.pass_context
def customer_show(ctx: click.Context, user_id: int) -> None:
    """Show a customer's billing record."""
    click.echo(describe(with_services(ctx, lambda services: customers.customer(services, user_id=user_id))))


@customer.command("timezone")
@click.option("--user", "user_id", type=ID, required=True)
@click.option("--tz", "timezone", required=True, help="IANA zone name, e.g. America/New_York.")
@click.option(
    "--from", "from_month", type=MONTH, required=True, help="First month billed in it (a later one)."
)
@click.pass_context
def customer_timezone(ctx: click.Context, user_id: int, timezone: str, from_month: Month) -> None:
    """Bill a customer's months in another zone from a later month on."""
    row = with_services(
        ctx,
        lambda services: customers.set_billing_timezone(
            services, user_id=user_id, timezone=timezone, from_month=from_month
        ),
    )
    click.echo(describe(row))
