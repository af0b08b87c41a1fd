"""The `callmeter` command, one module per command group. Bad input exits non-zero with one line on
stderr, never a traceback: every error the service raises is mapped here, once."""

from __future__ import annotations

import sys

import click

from callmeter.cli import (
    agents,
    credits,
    customers,
    invoices,
    plans,
    reconcile,
    schema_sdl,
    service,
    simulate,
    tokens,
    webhooks,
)
from callmeter.errors import CallmeterError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Usage tracking and billing for AI voice agents on Twilio."""
    ctx.obj = None  # the settings, loaded by the first command that needs them


for command in (
    service.serve,
    service.migrate,
    tokens.token,
    agents.agent,
    customers.customer,
    credits.credits,
    credits.limits,
    webhooks.webhook,
    webhooks.alert,
    simulate.simulate,
    plans.plan,
    invoices.invoice,
    reconcile.reconcile,
    schema_sdl.schema,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    try:
        # Without standalone mode, click returns a command's `ctx.exit(n)` instead of exiting.
        code = cli.main(args=argv, prog_name="callmeter", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("callmeter: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"callmeter: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except CallmeterError as exc:
        click.echo(f"callmeter: error: {exc}", err=True)
        sys.exit(2 if exc.http_status == 400 or exc.code == "INTERNAL_SERVER_ERROR" else 1)
    except OSError as exc:
        click.echo(f"callmeter: error: {exc}", err=True)
        sys.exit(1)
