"""`callmeter invoice`: a month's invoices as text, CSV, JSON or PDF; finalized, pushed to Stripe."""

from __future__ import annotations

import sys

import click

from callmeter.billing.documents import FORMATS, render
from callmeter.billing.invoices import InvoiceView
from callmeter.cli.params import ID, MONTH, with_services
from callmeter.months import Month
from callmeter.resolvers.invoices import finalize_month, month_invoices
from callmeter.resolvers.services import Services
from callmeter.resolvers.stripe_push import push_invoice


@click.command()
@click.option("--month", type=MONTH, required=True)
@click.option("--user", "user_id", type=ID, default=None)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to this file instead of standard output.",
)
@click.option("--finalize", is_flag=True, help="Finalize the month's invoices (a closed month only).")
@click.option("--stripe", "push", is_flag=True, help="Push finalized invoices to Stripe.")
@click.pass_context
def invoice(
    ctx: click.Context,
    month: Month,
    user_id: int | None,
    fmt: str,
    output: str | None,
    finalize: bool,
    push: bool,
) -> None:
    """Print a month's invoices: finalized ones, else live drafts."""

    async def views_of(services: Services) -> list[InvoiceView]:
        if finalize:
            views = await finalize_month(services, month=month, user_id=user_id)
        else:
            views = await month_invoices(services, month=month, user_id=user_id)
        if push:
            views = [await push_invoice(services, view) for view in views]
        return views

    document = render(with_services(ctx, views_of), fmt)
    if output:
        with open(output, "wb") as out:
            out.write(document if isinstance(document, bytes) else document.encode())
    elif isinstance(document, bytes):
        sys.stdout.buffer.write(document)
    else:
        click.echo(document, nl=not document.endswith("\n"))
