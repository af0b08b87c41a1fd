"""The Starlette application: routes, error mapping and the database's lifespan."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from callmeter import rest
from callmeter.billing.plans import pay_as_you_go
from callmeter.db.bus import LiveBus
from callmeter.db.connection import Database
from callmeter.errors import CallmeterError, DatabaseUnavailableError
from callmeter.limits import BodySizeLimit
from callmeter.logs import configure_logging
from callmeter.metrics import ServerTiming, metrics
from callmeter.openapi import openapi
from callmeter.reconciliation import reconcile_periodically
from callmeter.schema.view import make_graphql_app
from callmeter.settings import Settings, load_settings
from callmeter.webhooks.routes import twilio_status_callback

log = logging.getLogger("callmeter")


DASHBOARD = Path(__file__).with_name("dashboard")


async def dashboard(request: Request) -> Response:
    return FileResponse(DASHBOARD / "index.html", headers={"Cache-Control": "no-cache"})


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    try:
        await request.app.state.db.ping()
    except DatabaseUnavailableError as exc:
        return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready"})


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CallmeterError)
    return rest.error_response(exc)


async def http_error(request: Request, exc: Exception) -> Response:
    """JSON under /api/ (what its clients parse), Starlette's plain text elsewhere."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return rest.http_error_response(exc.status_code, exc.detail, exc.headers)
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


def create_app(settings: Settings | None = None, *, migrate_on_start: bool | None = None) -> Starlette:
    settings = settings or load_settings()
    if migrate_on_start is None:
        migrate_on_start = settings.is_sqlite

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if migrate_on_start:
            from callmeter.db.migrate import migrate  # imported here: Alembic only when it runs

            migrate(settings.database_url)
        app.state.db = Database(settings.database_url)
        await app.state.db.connect()
        app.state.bus = LiveBus(app.state.db)
        try:
            await app.state.bus.start()
        except asyncpg.UndefinedTableError:
            raise RuntimeError("the database has no callmeter tables: run `callmeter migrate`") from None
        # Everything built so far (libraries, the schema) lives as long as the process: exempt it
        # from collection, or each full collection scans it all (pauses of 150+ ms were measured).
        gc.collect()
        gc.freeze()
        # Fewer, larger young collections: a full collection then comes rarely (defaults: 700, 10, 10).
        gc.set_threshold(20_000, 20, 20)
        reconciler = None
        if settings.reconcile_interval_seconds > 0:
            reconciler = asyncio.create_task(
                reconcile_periodically(
                    app.state.db, settings, default_plan=app.state.default_plan, bus=app.state.bus
                )
            )
        try:
            yield
        finally:
            if reconciler is not None:
                reconciler.cancel()
                with suppress(asyncio.CancelledError):
                    await reconciler
            await app.state.bus.stop()
            await app.state.db.disconnect()

    graphql = make_graphql_app()
    app = Starlette(
        routes=[
            Route("/", dashboard, methods=["GET"]),
            Mount("/dashboard", StaticFiles(directory=DASHBOARD), name="dashboard"),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/webhooks/twilio/status", twilio_status_callback, methods=["POST"]),
            *rest.routes,
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
        ],
        exception_handlers={CallmeterError: domain_error, HTTPException: http_error},
        middleware=[Middleware(ServerTiming), Middleware(BodySizeLimit)],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.default_plan = pay_as_you_go(settings.price_per_minute)
    return app


def create_served_app() -> Starlette:
    """The app `callmeter serve` runs: the CLI has already migrated the embedded database."""
    configure_logging()
    return create_app(migrate_on_start=False)
