"""`callmeter token`: a JWT the running service accepts."""

from __future__ import annotations

import click

from callmeter.auth import issue_token
from callmeter.cli.params import ID, parse_ttl, settings_of


@click.command()
@click.option("--user", "user_id", type=ID, required=True, help="User id.")
@click.option("--admin", is_flag=True, help="Grant the admin role.")
@click.option("--ttl", default="24h", show_default=True, help="Lifetime: 90s, 15m, 24h, 7d.")
@click.pass_context
def token(ctx: click.Context, user_id: int, admin: bool, ttl: str) -> None:
    """Print a JWT the running service accepts."""
    lifetime = parse_ttl(ttl)
    click.echo(issue_token(settings_of(ctx), user_id=user_id, admin=admin, ttl=lifetime))
