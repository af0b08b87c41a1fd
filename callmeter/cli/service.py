"""`callmeter serve` and `callmeter migrate`."""

from __future__ import annotations

import errno
import socket

import click

from callmeter.cli.params import settings_of, with_services
from callmeter.errors import unreachable_reason
from callmeter.resolvers.services import check_schema, migrate_database


def ensure_port_free(host: str, port: int) -> None:
    """Refuse in one line what uvicorn would report in several log lines and exit 3 on."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise click.ClickException(f"port {port} on {host} is already in use") from None
        raise click.ClickException(f"cannot listen on {host}:{port}: {unreachable_reason(exc)}") from None


@click.command()
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

    from callmeter.logs import UVICORN_LOG_CONFIG

    settings = settings_of(ctx)
    host, port = host or settings.host, port or settings.port
    if settings.is_sqlite and workers > 1:
        raise click.BadParameter(
            "SQLite serves one process: use PostgreSQL for --workers > 1", param_hint="--workers"
        )
    ensure_port_free(host, port)
    # Migrates the embedded database; on PostgreSQL, a database it cannot open or that is not at
    # this version's migration is one line now, not a traceback per worker later.
    with_services(ctx, check_schema)
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


@click.command("migrate")
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Bring the database schema up to date (idempotent)."""
    migrate_database(settings_of(ctx))
    click.echo("database schema is up to date")
