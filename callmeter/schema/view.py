"""The GraphQL endpoint: one Strawberry ASGI app serving HTTP POST and both WebSocket protocols."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from callmeter.auth import viewer_from_authorization
from callmeter.errors import UnauthenticatedError
from callmeter.limits import GRAPHQL_LIMITS
from callmeter.schema.broadcast import Schema
from callmeter.schema.context import Context
from callmeter.schema.root import Mutation, Query
from callmeter.schema.subscriptions import Subscription

schema = Schema(query=Query, mutation=Mutation, subscription=Subscription, extensions=GRAPHQL_LIMITS)


class GraphQLApp(GraphQL[Context, None]):
    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        services = request.app.state.services
        viewer, auth_error = None, None
        header = request.headers.get("authorization")
        if header:
            try:
                viewer = viewer_from_authorization(services.settings, header)
            except UnauthenticatedError as exc:
                auth_error = str(exc)
        return Context(
            services=services,
            viewer=viewer,
            auth_error=auth_error,
            websocket=request if isinstance(request, WebSocket) else None,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | None:
        """WebSockets authenticate with `{"Authorization": "Bearer <JWT>"}` in connection_init."""
        params = context.connection_params or {}
        header = next((value for key, value in params.items() if key.lower() == "authorization"), None)
        try:
            context.viewer = viewer_from_authorization(
                context.services.settings, str(header) if header else None
            )
        except UnauthenticatedError:
            raise ConnectionRejectionError() from None
        if context.websocket is not None and context.viewer.expires_at is not None:
            # A subscription lives no longer than the token it was opened with.
            # The legacy protocol accepts another connection_init: the newest token decides.
            state = context.websocket.state
            if getattr(state, "expiry", None) is not None:
                state.expiry.cancel()
            delay = context.viewer.expires_at - time.time()
            loop = asyncio.get_running_loop()
            state.expiry = loop.call_later(delay, _close_expired, context.websocket)
        return UNSET

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        """Documents refused before execution get the codes GraphQL clients know from Apollo."""
        response = await super().process_result(request, result)
        refused = result.data is None and result.errors
        if refused and all(error.original_error is None for error in result.errors or []):
            for error in response.get("errors") or []:
                syntax = error["message"].startswith("Syntax Error")
                code = "GRAPHQL_PARSE_FAILED" if syntax else "GRAPHQL_VALIDATION_FAILED"
                error.setdefault("extensions", {}).setdefault("code", code)
        return response

    async def parse_http_body(self, request: Any) -> Any:
        try:
            return await super().parse_http_body(request)
        except AttributeError:  # Strawberry calls .get() on a JSON body that is a bare string or number
            raise HTTPException(400, "The request body must be a JSON object with a `query`") from None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            expiry = scope.get("state", {}).get("expiry")
            if expiry is not None:
                expiry.cancel()  # the connection ended first: let it be collected now


def _close_expired(websocket: WebSocket) -> None:
    async def close() -> None:
        with suppress(RuntimeError):  # already closed
            await websocket.close(code=4403, reason="token expired")

    if websocket.application_state is WebSocketState.CONNECTED:
        task = asyncio.ensure_future(close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


_closing: set[asyncio.Future[None]] = set()


def make_graphql_app() -> GraphQLApp:
    return GraphQLApp(
        schema,
        graphql_ide="graphiql",
        keep_alive=True,
        keep_alive_interval=15,
        connection_init_wait_timeout=timedelta(seconds=10),
    )
