"""The GraphQL object types. Storage rows stay out of the schema: each type is built `from_row`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from callmeter import call_lifecycle
from callmeter.billing.meters import MeterTotal
from callmeter.billing.money import minutes_of
from callmeter.billing.usage import MonthSummary
from callmeter.rows import AgentRow, AgentUsageRow, CallRow, WebhookEventRow
from callmeter.schema.billing import Plan
from callmeter.schema.context import Info

CallStatus = strawberry.enum(call_lifecycle.CallStatus, name="CallStatus")
CallEventKind = strawberry.enum(call_lifecycle.CallEventKind, name="CallEventKind")


@strawberry.type
class Agent:
    id: strawberry.ID
    name: str
    known_numbers: strawberry.Private[tuple[str, ...] | None] = None
    known_row: strawberry.Private[AgentRow | None] = None

    @strawberry.field
    def phone_numbers(self, info: Info) -> list[str]:
        # An agent that came with a page of calls is only loaded (batched) if its numbers are asked for.
        if self.known_numbers is not None:
            return list(self.known_numbers)
        return self._load_numbers(info)  # type: ignore[return-value]  # awaited by graphql-core

    async def _load_numbers(self, info: Info) -> list[str]:
        row = await info.context.agents.load(int(self.id))
        return list(row.phone_numbers) if row else []

    @strawberry.field(description="Where the voice gate redirects an allowed call.")
    async def voice_url(self, info: Info) -> str | None:
        row = self.known_row or await info.context.agents.load(int(self.id))
        return row.voice_url if row else None

    @classmethod
    def from_row(cls, row: AgentRow) -> Agent:
        return cls(
            id=strawberry.ID(str(row.id)), name=row.name, known_numbers=row.phone_numbers, known_row=row
        )

    @classmethod
    def named(cls, agent_id: int | None, name: str | None) -> Agent | None:
        """An agent known by id and name only (from a join); its numbers load when asked for."""
        if agent_id is None or name is None:
            return None
        return cls(id=strawberry.ID(str(agent_id)), name=name)


@strawberry.type
class CostComponent:
    meter: str
    quantity: Decimal
    cost_usd: Decimal

    @classmethod
    def from_total(cls, total: MeterTotal) -> CostComponent:
        return cls(meter=total.meter, quantity=total.quantity, cost_usd=total.charge_usd)


@strawberry.type
class Call:
    id: strawberry.ID
    call_sid: str
    call_from: str | None
    call_to: str | None
    direction: str | None
    status: CallStatus
    duration_seconds: int
    cost_usd: Decimal
    started_at: datetime | None
    ended_at: datetime | None
    terminated_reason: str | None = strawberry.field(
        description="Why spend control ended the call: spend_cap_reached or balance_exhausted."
    )
    row: strawberry.Private[CallRow | None] = None

    @strawberry.field(
        description="The call's cost by component: its minutes (telephony_minutes), then each meter."
    )
    def cost_breakdown(self) -> list[CostComponent]:
        return [CostComponent.from_total(total) for total in self.row.cost_breakdown] if self.row else []

    @strawberry.field(description="costUsd (the minutes) plus every metered component of the call.")
    def total_cost_usd(self) -> Decimal:
        return self.row.total_cost_usd if self.row else self.cost_usd

    # The call's agent came with its row (a join; agents are never deleted): a plain field, so a page
    # of calls costs no resolver per agent.
    agent: Agent | None = None

    @classmethod
    def from_row(cls, row: CallRow) -> Call:
        return cls(
            agent=Agent.named(row.agent_id, row.agent_name),
            id=strawberry.ID(str(row.id)),
            call_sid=row.call_sid,
            call_from=row.call_from,
            call_to=row.call_to,
            direction=row.direction,
            status=row.status,
            duration_seconds=row.duration_seconds,
            cost_usd=row.cost_usd,
            started_at=row.started_at,
            ended_at=row.ended_at,
            terminated_reason=row.terminated_reason,
            row=row,
        )


@strawberry.type
class CallEdge:
    cursor: str
    node: Call


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class CallConnection:
    edges: list[CallEdge]
    page_info: PageInfo


@strawberry.type
class MonthlyUsage:
    month: str
    total_calls: int
    total_seconds: int
    total_minutes: float  # a display value: rounded half-up in Decimal, converted at the edge
    total_cost_usd: Decimal
    usage_charge_usd: Decimal
    fixed_fee_usd: Decimal
    plan: Plan
    by_meter: list[CostComponent] = strawberry.field(
        description="usageChargeUsd by component: the minutes (telephony_minutes), then each meter."
    )

    @classmethod
    def from_summary(cls, summary: MonthSummary) -> MonthlyUsage:
        return cls(
            month=str(summary.month),
            total_calls=summary.total_calls,
            total_seconds=summary.total_seconds,
            total_minutes=float(summary.total_minutes),
            total_cost_usd=summary.total_cost_usd,
            usage_charge_usd=summary.usage_charge_usd,
            fixed_fee_usd=summary.fixed_fee_usd,
            plan=Plan.from_value(summary.plan),
            by_meter=[CostComponent.from_total(total) for total in summary.by_meter],
        )


@strawberry.type
class WebhookEvent:
    id: strawberry.ID
    call_sid: str
    call_status: str
    sequence_number: int | None
    event_at: datetime
    received_at: datetime
    call_from: str | None
    call_to: str | None
    direction: str | None

    @classmethod
    def from_row(cls, row: WebhookEventRow) -> WebhookEvent:
        form = row.payload
        return cls(
            id=strawberry.ID(str(row.id)),
            call_sid=row.call_sid,
            call_status=row.call_status,
            sequence_number=row.sequence_number,
            event_at=row.event_at,
            received_at=row.received_at,
            call_from=form.get("From"),
            call_to=form.get("To"),
            direction=form.get("Direction"),
        )


@strawberry.type
class AgentUsage:
    """One agent's completed calls in a month (calls whose agent was deleted have no agent)."""

    agent: Agent | None
    total_calls: int
    total_seconds: int
    total_minutes: float
    total_cost_usd: Decimal

    @classmethod
    def from_row(cls, row: AgentUsageRow) -> AgentUsage:
        return cls(
            agent=Agent.named(row.agent_id, row.agent_name),
            total_calls=row.total_calls,
            total_seconds=row.total_seconds,
            total_minutes=float(minutes_of(row.total_seconds)),
            total_cost_usd=row.total_cost_usd,
        )
