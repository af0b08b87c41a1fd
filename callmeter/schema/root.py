"""The GraphQL roots and the schema object."""

from __future__ import annotations

import strawberry

from callmeter.db import agents, events
from callmeter.resolvers.agents import validate_agent
from callmeter.resolvers.calls import check_page_size
from callmeter.resolvers.scope import parse_id, require_admin, target_user
from callmeter.schema.types import Agent, WebhookEvent
from callmeter.schema.usage import Usage


@strawberry.input
class CreateAgentInput:
    user_id: strawberry.ID
    name: str
    phone_numbers: list[str]


@strawberry.type
class Query:
    @strawberry.field
    def usage(self, info: strawberry.Info, user_id: strawberry.ID | None = None) -> Usage:
        return Usage(user_id=target_user(info.context.require_viewer(), user_id))

    @strawberry.field
    async def agents(self, info: strawberry.Info, user_id: strawberry.ID | None = None) -> list[Agent]:
        owner = target_user(info.context.require_viewer(), user_id)
        async with info.context.db.connection() as conn:
            rows = await agents.fetch_agents(conn, user_id=owner)
        return [Agent.from_row(row) for row in rows]

    @strawberry.field
    async def unattributed_events(self, info: strawberry.Info, first: int = 50) -> list[WebhookEvent]:
        require_admin(info.context.require_viewer())
        check_page_size(first)
        async with info.context.db.connection() as conn:
            rows = await events.list_unattributed(conn, limit=first)
        return [WebhookEvent.from_row(row) for row in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_agent(self, info: strawberry.Info, input: CreateAgentInput) -> Agent:
        require_admin(info.context.require_viewer())
        user_id = parse_id(input.user_id, "userId")
        name, numbers = validate_agent(input.name, input.phone_numbers)
        async with info.context.db.transaction() as conn:
            row = await agents.insert_agent(conn, user_id=user_id, name=name, numbers=numbers)
        return Agent.from_row(row)
