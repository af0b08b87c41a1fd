"""The GraphQL endpoint: one Strawberry ASGI app serving HTTP POST and both WebSocket protocols."""

from __future__ import annotations

import asyncio
import time
from contextlib import suppress
from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from callmeter.auth import viewer_from_authorization
from callmeter.errors import UnauthenticatedError
from callmeter.limits import GRAPHQL_LIMITS
from callmeter.schema.broadcast import Schema
from callmeter.schema.context import Context
from callmeter.schema.execution import Executor
from callmeter.schema.root import Mutation, Query
from callmeter.schema.subscriptions import Subscription

GRAPHQL_RESPONSE = "application/graphql-response+json; charset=utf-8"


def wants_graphql_response(accept: str | None) -> bool:
    """Whether an Accept header wants `application/graphql-response+json` at least as much as
    `application/json` (GraphQL over HTTP). Without it, or with only `*/*`: `application/json`,
    which older clients expect."""
    if not accept:
        return False
    weights: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (item.strip() for item in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        weights[media.lower()] = max(weight, weights.get(media.lower(), 0.0))
    graphql = weights.get("application/graphql-response+json", 0.0)
    plain = max(weights.get("application/json", 0.0), weights.get("*/*", 0.0) if graphql == 0 else 0.0)
    return graphql > 0 and graphql >= plain


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=GRAPHQL_LIMITS,
    execution_context_class=Executor,
)


class LegacyWSHandler(BaseGraphQLWSHandler[Context, None]):
    """graphql-ws (legacy): a `connection_init` whose payload is not an object is refused with the
    reason too (Strawberry sends an empty `connection_error`)."""

    async def handle_connection_init(self, message: Any) -> None:
        payload = message.get("payload")
        if payload is not None and not isinstance(payload, dict):
            reason = 'connection_init\'s payload must be an object, e.g. {"Authorization": "Bearer <JWT>"}'
            await self.send_message({"type": "connection_error", "payload": {"message": reason}})
            await self.websocket.close(code=1000, reason="")
            return
        await super().handle_connection_init(message)


class GraphQLApp(GraphQL[Context, None]):
    graphql_ws_handler_class = LegacyWSHandler

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
        except UnauthenticatedError as exc:
            # The legacy protocol sends this payload in `connection_error`; graphql-transport-ws
            # closes with 4403, its only way to refuse.
            raise ConnectionRejectionError({"message": str(exc), "code": exc.code}) from None
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

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.graphql_response = wants_graphql_response(request.headers.get("accept"))  # type: ignore[attr-defined]
        return sub_response

    async def process_result(self, request: Request, result: ExecutionResult) -> GraphQLHTTPResponse:
        """A request refused before execution (a document that does not parse or validate, variables
        that do not coerce) has no `data` entry, as GraphQL over HTTP says, and errors with the
        codes GraphQL clients know from Apollo."""
        response = await super().process_result(request, result)
        refused = result.data is None and result.errors
        # Parse, validation and variable coercion errors carry no exception of a resolver.
        before = (None.__class__, GraphQLError)
        if refused and all(isinstance(error.original_error, before) for error in result.errors or []):
            response.pop("data", None)  # type: ignore[misc]
            for error in response.get("errors") or []:
                syntax = error["message"].startswith("Syntax Error")
                code = "GRAPHQL_PARSE_FAILED" if syntax else "GRAPHQL_VALIDATION_FAILED"
                if error["message"].startswith("Variable "):
                    code = "BAD_USER_INPUT"
                error.setdefault("extensions", {}).setdefault("code", code)
        return response

    def create_response(
        self, response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse], sub_response: Response
    ) -> Response:
        """`application/graphql-response+json` to clients that ask for it, with 400 for a request
        refused before execution; `application/json` (always 200) to the others."""
        response = super().create_response(response_data, sub_response)
        if getattr(sub_response, "graphql_response", False):
            response.headers["content-type"] = GRAPHQL_RESPONSE
            if (
                isinstance(response_data, dict)
                and "data" not in response_data
                and not sub_response.status_code
            ):
                response.status_code = 400
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
