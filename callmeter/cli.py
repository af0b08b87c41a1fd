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
_DURATION = re.compile(r"(\d+)([smhd])", re.ASCII)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_TTL = timedelta(days=3650)
# Ids are BIGINT columns; a token's `sub` and GraphQL's ID accept the same range.
ID = click.IntRange(1, 2**63 - 1)


def parse_ttl(value: str) -> timedelta:
    found = _DURATION.fullmatch(value.strip())
    amount = found.group(1).lstrip("0") if found else ""
    if not found or not amount:
        raise click.BadParameter(f"{value!r} is not a duration like 90s, 15m, 24h or 7d", param_hint="--ttl")
    ttl = timedelta(seconds=int(amount) * _SECONDS[found.group(2)]) if len(amount) <= 9 else None
    if ttl is None or ttl > MAX_TTL:
        raise click.BadParameter(f"{value!r} is longer than {MAX_TTL.days}d", param_hint="--ttl")
    return ttl


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


def ensure_port_free(host: str, port: int) -> None:
    """Refuse in one line what uvicorn would report in several log lines and exit 3 on."""
    import errno
    import socket

    from callmeter.errors import unreachable_reason

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(f"port {port} on {host} is already in use") from None
        raise click.ClickException(f"cannot listen on {host}:{port}: {unreachable_reason(exc)}") from None


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

    from callmeter.commands import check_database
    from callmeter.db.migrate import migrate
    from callmeter.logs import UVICORN_LOG_CONFIG

    settings = settings_of(ctx)
    host, port = host or settings.host, port or settings.port
    if settings.is_sqlite and workers > 1:
        raise click.BadParameter(
            "SQLite serves one process: use PostgreSQL for --workers > 1", param_hint="--workers"
        )
    ensure_port_free(host, port)
    if settings.is_sqlite:
        migrate(settings.database_url)
    else:
        run_async(check_database, settings)
    uvicorn.run(
        "callmeter.app:create_served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        log_level="info",
        log_config=UVICORN_LOG_CONFIG,
        access_log=False,
        # Dashboard frames are small: compression would cost CPU and a zlib state per connection.
        ws_per_message_deflate=False,
    )


@cli.command("migrate")
@click.pass_context
def migrate_command(ctx: click.Context) -> None:
    """Bring the database schema up to date (idempotent)."""
    from callmeter.db.migrate import migrate

    migrate(settings_of(ctx).database_url)
    click.echo("database schema is up to date")


@cli.command()
@click.option("--user", "user_id", type=ID, required=True, help="User id.")
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
@click.option("--user", "user_id", type=ID, required=True, help="Owner's id.")
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
    import httpx

    from callmeter.errors import unreachable_reason
    from callmeter.simulate import run_simulation

    settings = settings_of(ctx)
    base = (url or f"http://{settings.host}:{settings.port}").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--url")
    try:
        run_async(run_simulation, settings, base_url=base, count=count, concurrency=concurrency, seed=seed)
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach {base}: {unreachable_reason(exc)}") from None


class MonthParam(click.ParamType):
    name = "YYYY-MM"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from callmeter.months import Month

        try:
            return value if not isinstance(value, str) else Month.parse(value)
        except CallmeterError as exc:
            self.fail(str(exc), param, ctx)


class PlanIdParam(click.ParamType):
    name = "ID|default"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from callmeter.resolvers.plans import parse_plan_id

        try:
            return parse_plan_id(value)
        except CallmeterError as exc:
            self.fail(str(exc), param, ctx)


def parse_tier(text: str) -> tuple[int | None, str]:
    bound, sep, rate = text.partition(":")
    if not sep or not rate:
        raise click.BadParameter(
            f"{text!r} is not UPTO:RATE (e.g. 500:0.06, or max:0.02 for the last)", param_hint="--tier"
        )
    if bound in ("max", "inf", ""):
        return None, rate
    if not bound.isascii() or not bound.isdigit() or len(bound) > 18:
        raise click.BadParameter(f"{bound!r} is not a whole number of minutes", param_hint="--tier")
    return int(bound), rate


@cli.group()
def plan() -> None:
    """Manage pricing plans."""


@plan.command("add")
@click.option("--name", required=True)
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["PAY_AS_YOU_GO", "GRADUATED", "VOLUME", "SUBSCRIPTION"], case_sensitive=False),
)
@click.option("--rate", help="Rate per minute (PAY_AS_YOU_GO).")
@click.option("--tier", "tiers", multiple=True, help="UPTO:RATE, repeatable; max:RATE for the last tier.")
@click.option("--fee", help="Monthly fee in USD (SUBSCRIPTION).")
@click.option("--included", type=click.IntRange(min=0), help="Included minutes (SUBSCRIPTION).")
@click.option("--overage", help="Overage rate per minute (SUBSCRIPTION).")
@click.option("--increment", type=int, default=1, show_default=True, help="Billing increment, seconds.")
@click.option("--minimum", type=int, default=0, show_default=True, help="Minimum billable seconds a call.")
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
) -> None:
    """Create a pricing plan and print its id."""
    from callmeter.commands import add_plan
    from callmeter.resolvers.plans import build_plan

    new_plan = build_plan(
        name=name,
        kind=kind.upper(),
        rate_per_minute=rate,
        tiers=[parse_tier(tier) for tier in tiers],
        monthly_fee_usd=fee,
        included_minutes=included,
        overage_rate_per_minute=overage,
        billing_increment_seconds=increment,
        minimum_billable_seconds=minimum,
    )
    created = run_async(add_plan, settings_of(ctx), new_plan)
    click.echo(f"plan {created.id} ({created.name}, {created.kind})")


@plan.command("assign")
@click.option("--user", "user_id", type=ID, required=True)
@click.option(
    "--plan", "plan_id", type=PlanIdParam(), required=True, help="A plan's id, or default (PRICE_PER_MINUTE)."
)
@click.option("--from", "from_month", type=MonthParam(), required=True, help="First month billed by it.")
@click.pass_context
def plan_assign(ctx: click.Context, user_id: int, plan_id: int | None, from_month: Any) -> None:
    """Bill a user by a plan from a month on (re-rates that month's calls and later ones)."""
    from callmeter.commands import assign_plan_to_user
    from callmeter.resolvers.plans import DEFAULT_PLAN_ID

    assigned = run_async(
        assign_plan_to_user, settings_of(ctx), user_id=user_id, plan_id=plan_id, from_month=from_month
    )
    shown = DEFAULT_PLAN_ID if assigned.id is None else assigned.id
    click.echo(f"user {user_id} is billed by plan {shown} ({assigned.name}) from {from_month}")


@plan.command("list")
@click.pass_context
def plan_list(ctx: click.Context) -> None:
    """List the pricing plans."""
    from callmeter.commands import all_plans

    for item in run_async(all_plans, settings_of(ctx)):
        click.echo(f"{item.id}\t{item.kind}\t{item.name}")


@cli.command()
@click.option("--month", type=MonthParam(), required=True)
@click.option("--user", "user_id", type=ID, default=None)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "csv", "json", "pdf"]), default="text", show_default=True
)
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
    month: Any,
    user_id: int | None,
    fmt: str,
    output: str | None,
    finalize: bool,
    push: bool,
) -> None:
    """Print a month's invoices: finalized ones, else live drafts."""
    from callmeter.commands import invoice_views
    from callmeter.invoice_formats import render

    views = run_async(
        invoice_views, settings_of(ctx), month=month, user_id=user_id, finalize=finalize, push_to_stripe=push
    )
    document = render(views, fmt)
    if output:
        with open(output, "wb") as out:
            out.write(document if isinstance(document, bytes) else document.encode())
    elif isinstance(document, bytes):
        sys.stdout.buffer.write(document)
    else:
        click.echo(document, nl=not document.endswith("\n"))


@cli.command()
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
    from callmeter.commands import reconcile_calls

    settings = settings_of(ctx)
    report = run_async(
        reconcile_calls,
        settings,
        idle_seconds=settings.reconcile_after_seconds if older_than is None else older_than,
    )
    click.echo(
        f"checked {report.checked} stale calls: {report.closed} closed from Twilio, "
        f"{report.still_active} still active, {report.flagged_stale} flagged stale, {report.errors} errors"
    )
    if report.errors:
        ctx.exit(1)


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


if __name__ == "__main__":
    main()
