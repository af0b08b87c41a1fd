"""The Starlette application: routes, error handlers, middleware, and the lifespan that opens the
services and starts the loops that run beside the routes."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from callmeter import rest
from callmeter.errors import CallmeterError, DatabaseUnavailableError
from callmeter.limits import BodySizeLimit
from callmeter.logs import configure_logging
from callmeter.metrics import ServerTiming, exposition
from callmeter.resolvers.calls import count_active_calls
from callmeter.resolvers.services import open_services
from callmeter.schema.view import make_graphql_app
from callmeter.settings import Settings, load_settings
from callmeter.webhooks.routes import CALLBACK_PATH, count_refused_body, twilio_status_callback
from callmeter.webhooks.voice import VOICE_PATH, twilio_voice
from callmeter.workers.deliveries import deliver_periodically
from callmeter.workers.enforcement import enforce_periodically
from callmeter.workers.meters import bill_overdue_periodically
from callmeter.workers.reconciliation import reconcile_periodically

DASHBOARD = Path(__file__).with_name("dashboard")
HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


async def dashboard(request: Request) -> Response:
    return FileResponse(DASHBOARD / "index.html", headers={"Cache-Control": "no-cache"})


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    try:
        await request.app.state.services.db.ping()
    except DatabaseUnavailableError as exc:
        return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: Request) -> Response:
    services = request.app.state.services
    return await exposition(
        subscribers=services.bus.subscriber_count,
        pool=services.db.pool_stats(),
        active_calls=lambda: count_active_calls(services),
    )


async def domain_error(request: Request, exc: Exception) -> Response:
    """A domain error as `{"error", "code"}` with its status (REST; GraphQL maps its own)."""
    assert isinstance(exc, CallmeterError)
    # RFC 6750: a 401 names the scheme the client should authenticate with.
    headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
    return JSONResponse({"error": str(exc), "code": exc.code}, status_code=exc.http_status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (no such route, wrong method): JSON under /api/ (what its clients
    parse), plain text elsewhere."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        status = exc.status_code
        code = HTTP_CODES.get(status, "BAD_REQUEST" if status < 500 else "INTERNAL_SERVER_ERROR")
        return JSONResponse({"error": exc.detail, "code": code}, status_code=status, headers=exc.headers)
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


def create_app(settings: Settings | None = None, *, migrate_on_start: bool | None = None) -> Starlette:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = (settings.database_pool_size, settings.database_pool_size)  # all opened at start
        async with open_services(settings, migrate_first=migrate_on_start, pool_size=pool) as services:
            app.state.services = services
            await services.bus.start()
            # Everything built so far (libraries, the schema) lives as long as the process: exempt it
            # from collection, or each full collection scans it all (pauses of 150+ ms were measured).
            gc.collect()
            gc.freeze()
            # Fewer, larger young collections: a full collection then comes rarely (defaults: 700, 10, 10).
            gc.set_threshold(20_000, 20, 20)
            workers = []
            if settings.reconcile_interval_seconds > 0:
                workers.append(asyncio.create_task(reconcile_periodically(services)))
            if settings.enforce_interval_seconds > 0:
                workers.append(asyncio.create_task(enforce_periodically(services)))
            workers.append(asyncio.create_task(deliver_periodically(services)))
            workers.append(asyncio.create_task(bill_overdue_periodically(services)))
            try:
                yield
            finally:
                for worker in workers:
                    worker.cancel()
                    with suppress(asyncio.CancelledError):
                        await worker
                await services.bus.stop()

    graphql = make_graphql_app()
    return Starlette(
        routes=[
            Route("/", dashboard, methods=["GET"]),
            Mount("/dashboard", StaticFiles(directory=DASHBOARD), name="dashboard"),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route(CALLBACK_PATH, twilio_status_callback, methods=["POST"]),
            Route(VOICE_PATH, twilio_voice, methods=["POST"]),
            *rest.routes,
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
        ],
        exception_handlers={CallmeterError: domain_error, HTTPException: http_error},
        middleware=[Middleware(ServerTiming), Middleware(BodySizeLimit, on_refused=count_refused_body)],
        lifespan=lifespan,
    )


def create_served_app() -> Starlette:
    """The app `callmeter serve` runs: the CLI has already migrated the embedded database."""
    configure_logging()
    return create_app(migrate_on_start=False)
