"""The `callmeter` command. Bad input exits non-zero with one line on stderr, never a traceback."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import click

from callmeter.errors import CallmeterError
from callmeter.settings import Settings, load_settings

T = TypeVar("T")
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_ttl(value: str) -> timedelta:
    found = _DURATION.match(value.strip())
    if not found or int(found.group(1)) == 0:
        raise click.BadParameter(f"{value!r} is not a duration like 90s, 15m, 24h or 7d")
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})


def run_async(func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    return asyncio.run(func(*args, **kwargs))  # type: ignore[arg-type]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Usage tracking and billing for AI voice agents on Twilio."""
    ctx.obj = None


def settings_of(ctx: click.Context) -> Settings:
    if ctx.find_root().obj is None:
        ctx.find_root().obj = load_settings()
    return ctx.find_root().obj  # type: ignore[no-any-return]


@cli.command()
@click.option("--host", default=None, help="Interface to listen on (default: $HOST or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port (default: $PORT or 8000).")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes (PostgreSQL only for more than one).",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    help="Proxies trusted for X-Forwarded-* headers (uvicorn's option).",
)
@click.pass_context
def serve(
    ctx: click.Context, host: str | None, port: int | None, workers: int, forwarded_allow_ips: str | None
) -> None:
    """Run the service (migrates the embedded database first)."""
    import uvicorn

    from callmeter.db.migrate import migrate

    settings = settings_of(ctx)
    if settings.is_sqlite:
        if workers > 1:
            raise click.BadParameter(
                "SQLite serves one process: use PostgreSQL for --workers > 1", param_hint="--workers"
            )
        migrate(settings.database_url)
    uvicorn.run(
        "callmeter.app:create_served_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="info",
        access_log=False,
    )


@cli.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Bring the database schema up to date (idempotent)."""
    from callmeter.db.migrate import migrate

    migrate(settings_of(ctx).database_url)
    click.echo("database schema is up to date")


@cli.command()
@click.option("--user", "user_id", type=click.IntRange(min=1), required=True, help="User id.")
@click.option("--admin", is_flag=True, help="Grant the admin role.")
@click.option("--ttl", default="24h", show_default=True, help="Lifetime: 90s, 15m, 24h, 7d.")
@click.pass_context
def token(ctx: click.Context, user_id: int, admin: bool, ttl: str) -> None:
    """Print a JWT the running service accepts."""
    from callmeter.auth import issue_token

    lifetime = parse_ttl(ttl)
    click.echo(issue_token(settings_of(ctx), user_id=user_id, admin=admin, ttl=lifetime))


@cli.group()
def agent() -> None:
    """Manage voice agents."""


@agent.command("add")
@click.option("--user", "user_id", type=click.IntRange(min=1), required=True, help="Owner's id.")
@click.option("--name", required=True, help="Agent name shown on the dashboard.")
@click.option(
    "--number", "numbers", multiple=True, required=True, help="E.164 number the agent answers (repeatable)."
)
@click.pass_context
def agent_add(ctx: click.Context, user_id: int, name: str, numbers: tuple[str, ...]) -> None:
    """Register a voice agent and the numbers it answers."""
    from callmeter.commands import add_agent

    row = run_async(add_agent, settings_of(ctx), user_id=user_id, name=name, numbers=numbers)
    click.echo(f"agent {row.id} ({row.name}) for user {row.user_id}: {', '.join(row.phone_numbers)}")


@cli.command()
@click.option(
    "--calls",
    "count",
    type=click.IntRange(1, 1_000_000),
    default=20,
    show_default=True,
    help="How many calls to simulate.",
)
@click.option("--url", default=None, help="Service base URL (default: http://$HOST:$PORT).")
@click.option("--concurrency", type=click.IntRange(1, 512), default=8, show_default=True)
@click.option("--seed", type=int, default=None, help="Random seed, for a repeatable run.")
@click.pass_context
def simulate(ctx: click.Context, count: int, url: str | None, concurrency: int, seed: int | None) -> None:
    """Send realistic, signed Twilio status callbacks to a running service."""
    from callmeter.simulate import run_simulation

    settings = settings_of(ctx)
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--url")
    run_async(run_simulation, settings, base_url=base, count=count, concurrency=concurrency, seed=seed)


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="callmeter", standalone_mode=False)
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


if __name__ == "__main__":
    main()
