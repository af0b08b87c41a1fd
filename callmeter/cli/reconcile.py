"""`callmeter reconcile`: close calls whose final callback never came, from Twilio's record."""

from __future__ import annotations

import click

from callmeter.cli.params import MAX_TTL, settings_of, with_services
from callmeter.workers.reconciliation import reconcile_stale_calls


@click.command()
@click.option(
    "--older-than",
    "older_than",
    type=click.IntRange(0, int(MAX_TTL.total_seconds())),
    default=None,
    help="Seconds since a call's last callback arrived (default: $RECONCILE_AFTER_SECONDS, 4 h).",
)
@click.pass_context
def reconcile(ctx: click.Context, older_than: int | None) -> None:
    """Close calls whose final callback never came, from Twilio's record (else flag them stale)."""
    settings = settings_of(ctx)
    idle = settings.reconcile_after_seconds if older_than is None else older_than
    report = with_services(ctx, lambda services: reconcile_stale_calls(services, idle_seconds=idle))
    click.echo(
        f"checked {report.checked} stale calls: {report.closed} closed from Twilio, "
        f"{report.still_active} still active, {report.flagged_stale} flagged stale, {report.errors} errors"
    )
    if report.errors:
        ctx.exit(1)
