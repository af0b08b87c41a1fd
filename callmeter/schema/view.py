"""The GraphQL endpoint: one Strawberry ASGI app serving HTTP POST and both WebSocket protocols."""

from __future__ import annotations

from typing import Any

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from callmeter.auth import viewer_from_authorization
from callmeter.errors import UnauthenticatedError
from callmeter.schema.context import Context
from callmeter.schema.root import Mutation, Query

schema = strawberry.Schema(query=Query, mutation=Mutation)


class GraphQLApp(GraphQL[Context, None]):
    async def get_context(self, request: Request | WebSocket, response: Any = None) -> Context:
        state = request.app.state
        viewer, auth_error = None, None
        header = request.headers.get("authorization")
        if header:
            try:
                viewer = viewer_from_authorization(state.settings, header)
            except UnauthenticatedError as exc:
                auth_error = str(exc)
        return Context(
            db=state.db,
            settings=state.settings,
            default_plan=state.default_plan,
            viewer=viewer,
            auth_error=auth_error,
        )


def make_graphql_app() -> GraphQLApp:
    return GraphQLApp(schema, graphql_ide="graphiql")
