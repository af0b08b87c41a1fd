"""The GraphQL roots and the schema object."""

from __future__ import annotations

import strawberry

from callmeter.db import agents, events
from callmeter.months import Month
from callmeter.resolvers import invoices as invoice_resolvers
from callmeter.resolvers import plans as plan_resolvers
from callmeter.resolvers.agents import validate_agent
from callmeter.resolvers.calls import check_page_size
from callmeter.resolvers.scope import parse_id, require_admin, target_user
from callmeter.schema.billing import Invoice, Plan, PlanInput
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
    async def unattributed_events(self, info: strawberry.Info, first: int | None = 50) -> list[WebhookEvent]:
        require_admin(info.context.require_viewer())
        first = check_page_size(first)
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

    @strawberry.mutation
    async def create_plan(self, info: strawberry.Info, input: PlanInput) -> Plan:
        require_admin(info.context.require_viewer())
        plan = plan_resolvers.build_plan(
            name=input.name,
            kind=input.kind.value,
            rate_per_minute=input.rate_per_minute,
            tiers=[(tier.up_to_minutes, tier.rate_per_minute) for tier in input.tiers or []],
            monthly_fee_usd=input.monthly_fee_usd,
            included_minutes=input.included_minutes,
            overage_rate_per_minute=input.overage_rate_per_minute,
            billing_increment_seconds=_or(input.billing_increment_seconds, 1),
            minimum_billable_seconds=_or(input.minimum_billable_seconds, 0),
        )
        return Plan.from_value(await plan_resolvers.create_plan(info.context.db, plan))

    @strawberry.mutation(
        description='Bill the user by the plan (or "default") from fromMonth until their next later '
        "assignment, re-rating the months from fromMonth on. Admin only."
    )
    async def assign_plan(
        self, info: strawberry.Info, user_id: strawberry.ID, plan_id: strawberry.ID, from_month: str
    ) -> Plan:
        require_admin(info.context.require_viewer())
        plan = await plan_resolvers.assign_plan(
            info.context.db,
            user_id=parse_id(user_id, "userId"),
            plan_id=plan_resolvers.parse_plan_id(plan_id),
            from_month=Month.parse(from_month),
            default_plan=info.context.default_plan,
        )
        return Plan.from_value(plan)

    @strawberry.mutation
    async def finalize_invoices(self, info: strawberry.Info, month: str) -> list[Invoice]:
        viewer = require_admin(info.context.require_viewer())
        views = await invoice_resolvers.finalize_month(
            info.context.db, month=Month.parse(month), default_plan=info.context.default_plan
        )
        return [Invoice.from_view(view, viewer_user_id=viewer.user_id) for view in views]


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
