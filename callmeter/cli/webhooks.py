"""`callmeter webhook add|list|delete` and `callmeter alert add|list|delete`: outgoing webhook endpoints
and customers' usage alerts."""

from __future__ import annotations

from decimal import Decimal

import click

from callmeter.billing.alerts import AlertMetric
from callmeter.cli.credits import AMOUNT
from callmeter.cli.params import ID, with_services
from callmeter.notifications import EventType
from callmeter.resolvers import alerts as alert_resolvers
from callmeter.resolvers import webhooks as webhook_resolvers


@click.group()
def webhook() -> None:
    """Outgoing webhook endpoints."""


@webhook.command("add")
@click.option("--url", required=True, help="https:// URL the events are POSTed to.")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    type=click.Choice([str(kind) for kind in EventType]),
    help="An event type to send (repeatable).",
)
@click.option("--description", default=None)
@click.pass_context
def webhook_add(ctx: click.Context, url: str, events: tuple[str, ...], description: str | None) -> None:
    """Add an endpoint; prints its signing secret, shown this once."""
    created = with_services(
        ctx,
        lambda services: webhook_resolvers.create_endpoint(
            services, url=url, events=events, description=description
        ),
    )
    click.echo(f"endpoint {created.endpoint.id} {created.endpoint.url}: {', '.join(created.endpoint.events)}")
    click.echo(f"secret (shown once): {created.secret}")


@webhook.command("list")
@click.pass_context
def webhook_list(ctx: click.Context) -> None:
    """Every endpoint."""
    for row in with_services(ctx, webhook_resolvers.list_endpoints):
        state = " (disabled)" if row.disabled else ""
        click.echo(f"endpoint {row.id} {row.url}{state}: {', '.join(row.events)}")


@webhook.command("delete")
@click.option("--id", "endpoint_id", type=ID, required=True)
@click.pass_context
def webhook_delete(ctx: click.Context, endpoint_id: int) -> None:
    """Stop sending to an endpoint."""
    if not with_services(
        ctx, lambda services: webhook_resolvers.delete_endpoint(services, endpoint_id=endpoint_id)
    ):
        raise click.ClickException(f"there is no webhook endpoint {endpoint_id}")
    click.echo(f"endpoint {endpoint_id} deleted")


@click.group()
def alert() -> None:
    """Customers' usage alerts."""


@alert.command("add")
@click.option("--user", "user_id", type=ID, required=True)
@click.option("--metric", type=click.Choice([str(metric) for metric in AlertMetric]), required=True)
@click.option("--threshold", type=AMOUNT, required=True)
@click.option("--name", default=None)
@click.pass_context
def alert_add(ctx: click.Context, user_id: int, metric: str, threshold: Decimal, name: str | None) -> None:
    """Fire usage.threshold_reached once a month when the metric reaches the threshold."""
    row = with_services(
        ctx,
        lambda services: alert_resolvers.create_alert(
            services, user_id=user_id, metric=AlertMetric(metric), threshold=threshold, name=name
        ),
    )
    click.echo(f"alert {row.id} for customer {row.user_id}: {row.metric} >= {row.threshold}")


@alert.command("list")
@click.option("--user", "user_id", type=ID, default=None, help="One customer's (default: all).")
@click.pass_context
def alert_list(ctx: click.Context, user_id: int | None) -> None:
    """Usage alerts and the month each last fired."""
    for row in with_services(ctx, lambda services: alert_resolvers.list_alerts(services, user_id=user_id)):
        fired = f", last fired {row.last_fired_month}" if row.last_fired_month else ""
        click.echo(f"alert {row.id} for customer {row.user_id}: {row.metric} >= {row.threshold}{fired}")


@alert.command("delete")
@click.option("--id", "alert_id", type=ID, required=True)
@click.pass_context
def alert_delete(ctx: click.Context, alert_id: int) -> None:
    """Delete a usage alert."""
    if not with_services(ctx, lambda services: alert_resolvers.delete_alert(services, alert_id=alert_id)):
        raise click.ClickException(f"there is no usage alert {alert_id}")
    click.echo(f"alert {alert_id} deleted")
