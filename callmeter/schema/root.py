"""The GraphQL roots. Every field: authorise the viewer, call one resolver, map its result."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from callmeter.inputs import parse_id
from callmeter.months import Month
from callmeter.resolvers import agents, alerts, credits, customers, events, invoices, plans, spend, webhooks
from callmeter.resolvers.scope import require_admin, target_user
from callmeter.schema.alerts import UsageAlert, UsageAlertInput
from callmeter.schema.billing import Invoice, Plan, PlanInput
from callmeter.schema.context import Info
from callmeter.schema.customers import CallAllowance, CreditGrant, Customer, LimitsInput
from callmeter.schema.types import Agent, WebhookEvent
from callmeter.schema.usage import Usage
from callmeter.schema.webhooks import WebhookDelivery, WebhookEndpoint, WebhookEndpointInput


@strawberry.input
class CreateAgentInput:
    user_id: strawberry.ID
    name: str
    phone_numbers: list[str]
    voice_url: str | None = None


@strawberry.type
class Query:
    @strawberry.field
    def usage(self, info: Info, user_id: strawberry.ID | None = None) -> Usage:
        return Usage(user_id=target_user(info.context.require_viewer(), user_id))

    @strawberry.field(description="The viewer's customer record; admins may name anyone.")
    async def customer(self, info: Info, user_id: strawberry.ID | None = None) -> Customer:
        owner = target_user(info.context.require_viewer(), user_id)
        return Customer.from_row(await customers.customer(info.context.services, user_id=owner))

    @strawberry.field(description="Whether a call of the agent may start now; read-only (holds no slot).")
    async def call_allowance(self, info: Info, agent_id: strawberry.ID) -> CallAllowance:
        decision = await spend.call_allowance(
            info.context.services, info.context.require_viewer(), agent_id=parse_id(agent_id, "agentId")
        )
        return CallAllowance.from_value(decision.allowance)

    @strawberry.field
    async def agents(self, info: Info, user_id: strawberry.ID | None = None) -> list[Agent]:
        owner = target_user(info.context.require_viewer(), user_id)
        rows = await agents.list_agents(info.context.services, user_id=owner)
        return [Agent.from_row(row) for row in rows]

    @strawberry.field(description="Every webhook endpoint (secrets are not shown). Admin only.")
    async def webhook_endpoints(self, info: Info) -> list[WebhookEndpoint]:
        require_admin(info.context.require_viewer())
        return [WebhookEndpoint.from_row(row) for row in await webhooks.list_endpoints(info.context.services)]

    @strawberry.field(description="An endpoint's deliveries, newest first. Admin only.")
    async def webhook_deliveries(
        self, info: Info, endpoint_id: strawberry.ID, first: int | None = 50
    ) -> list[WebhookDelivery]:
        require_admin(info.context.require_viewer())
        rows = await webhooks.deliveries(
            info.context.services, endpoint_id=parse_id(endpoint_id, "endpointId"), first=first
        )
        return [WebhookDelivery.from_row(row) for row in rows]

    @strawberry.field
    async def unattributed_events(self, info: Info, first: int | None = 50) -> list[WebhookEvent]:
        require_admin(info.context.require_viewer())
        rows = await events.unattributed_events(info.context.services, first=first)
        return [WebhookEvent.from_row(row) for row in rows]


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_agent(self, info: Info, input: CreateAgentInput) -> Agent:
        require_admin(info.context.require_viewer())
        row = await agents.create_agent(
            info.context.services,
            user_id=parse_id(input.user_id, "userId"),
            name=input.name,
            numbers=input.phone_numbers,
            voice_url=input.voice_url,
        )
        return Agent.from_row(row)

    @strawberry.mutation
    async def create_plan(self, info: Info, input: PlanInput) -> Plan:
        require_admin(info.context.require_viewer())
        plan = plans.build_plan(
            name=input.name,
            kind=input.kind.value,
            rate_per_minute=input.rate_per_minute,
            tiers=[(tier.up_to_minutes, tier.rate_per_minute) for tier in input.tiers or []],
            monthly_fee_usd=input.monthly_fee_usd,
            included_minutes=input.included_minutes,
            overage_rate_per_minute=input.overage_rate_per_minute,
            billing_increment_seconds=_or(input.billing_increment_seconds, 1),
            minimum_billable_seconds=_or(input.minimum_billable_seconds, 0),
            meter_rates=[
                (rate.meter, Decimal(1) if rate.unit_size is None else rate.unit_size, rate.rate_per_unit)
                for rate in input.meter_rates or []
            ],
        )
        return Plan.from_value(await plans.create_plan(info.context.services, plan))

    @strawberry.mutation(
        description='Bill the user by the plan (or "default") from fromMonth until their next later '
        "assignment, re-rating the months from fromMonth on. Admin only."
    )
    async def assign_plan(
        self, info: Info, user_id: strawberry.ID, plan_id: strawberry.ID, from_month: str
    ) -> Plan:
        require_admin(info.context.require_viewer())
        plan = await plans.assign_plan(
            info.context.services,
            user_id=parse_id(user_id, "userId"),
            plan_id=plans.parse_plan_id(plan_id),
            from_month=Month.parse(from_month),
        )
        return Plan.from_value(plan)

    @strawberry.mutation(
        description="Bill the customer's months in timezone from the start of fromMonth (later than "
        "their current month). Admin only."
    )
    async def set_billing_timezone(
        self, info: Info, user_id: strawberry.ID, timezone: str, from_month: str
    ) -> Customer:
        require_admin(info.context.require_viewer())
        row = await customers.set_billing_timezone(
            info.context.services,
            user_id=parse_id(user_id, "userId"),
            timezone=timezone,
            from_month=Month.parse(from_month),
        )
        return Customer.from_row(row)

    @strawberry.mutation(
        description="Add credit to the customer's prepaid balance, once per idempotencyKey. Admin only."
    )
    async def grant_credits(
        self,
        info: Info,
        user_id: strawberry.ID,
        amount_usd: Decimal,
        idempotency_key: str,
        description: str | None = None,
    ) -> CreditGrant:
        require_admin(info.context.require_viewer())
        row = await credits.grant_credits(
            info.context.services,
            user_id=parse_id(user_id, "userId"),
            amount=amount_usd,
            key=idempotency_key,
            description=description,
        )
        return CreditGrant.from_row(row)

    @strawberry.mutation(description="Replace all of the customer's limits (null: no limit). Admin only.")
    async def set_limits(self, info: Info, user_id: strawberry.ID, input: LimitsInput) -> Customer:
        require_admin(info.context.require_viewer())
        row = await credits.set_limits(
            info.context.services, user_id=parse_id(user_id, "userId"), limits=input.to_value()
        )
        return Customer.from_row(row)

    @strawberry.mutation(description="Fire usage.threshold_reached once a month at a threshold. Admin only.")
    async def create_usage_alert(self, info: Info, input: UsageAlertInput) -> UsageAlert:
        require_admin(info.context.require_viewer())
        row = await alerts.create_alert(
            info.context.services,
            user_id=parse_id(input.user_id, "userId"),
            metric=input.metric,
            threshold=input.threshold,
            name=input.name,
        )
        return UsageAlert.from_row(row)

    @strawberry.mutation(description="Admin only.")
    async def delete_usage_alert(self, info: Info, id: strawberry.ID) -> bool:
        require_admin(info.context.require_viewer())
        return await alerts.delete_alert(info.context.services, alert_id=parse_id(id, "id"))

    @strawberry.mutation(
        description="Send events to a URL, signed with the secret returned once. Admin only."
    )
    async def create_webhook_endpoint(self, info: Info, input: WebhookEndpointInput) -> WebhookEndpoint:
        require_admin(info.context.require_viewer())
        created = await webhooks.create_endpoint(
            info.context.services, url=input.url, events=input.events, description=input.description
        )
        return WebhookEndpoint.from_row(created.endpoint, created.secret)

    @strawberry.mutation(description="Stop sending to the endpoint. Admin only.")
    async def delete_webhook_endpoint(self, info: Info, id: strawberry.ID) -> bool:
        require_admin(info.context.require_viewer())
        return await webhooks.delete_endpoint(info.context.services, endpoint_id=parse_id(id, "id"))

    @strawberry.mutation(description="Send a delivery again now (same webhook-id). Admin only.")
    async def redeliver_webhook(self, info: Info, delivery_id: strawberry.ID) -> WebhookDelivery:
        require_admin(info.context.require_viewer())
        row = await webhooks.redeliver(info.context.services, delivery_id=parse_id(delivery_id, "deliveryId"))
        return WebhookDelivery.from_row(row)

    @strawberry.mutation
    async def finalize_invoices(self, info: Info, month: str) -> list[Invoice]:
        viewer = require_admin(info.context.require_viewer())
        views = await invoices.finalize_month(info.context.services, month=Month.parse(month))
        return [Invoice.from_view(view, viewer_user_id=viewer.user_id) for view in views]


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
