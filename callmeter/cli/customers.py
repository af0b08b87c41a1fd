"""`callmeter customer show|timezone`: a customer's billing record and their billing time zone."""

from __future__ import annotations

import click

from callmeter.cli.params import ID, MONTH, with_services
from callmeter.months import Month
from callmeter.resolvers import customers
from callmeter.rows import CustomerRow


def describe(row: CustomerRow) -> str:
    schedule = "; ".join(f"{name} from {start}" for start, name in row.calendar.zones)
    return f"customer {row.user_id}\n  billing time zone: {row.calendar.timezone_now()} ({schedule})"


@click.group()
def customer() -> None:
    """Customers: billing time zone."""


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
