"""`Usage`: one user's months and calls, as the `usage` query returns them."""

from __future__ import annotations

from typing import Annotated

import strawberry

from callmeter.billing.money import minutes_of
from callmeter.db import agents, calls
from callmeter.months import Month
from callmeter.resolvers import calls as call_resolvers
from callmeter.resolvers import invoices as invoice_resolvers
from callmeter.resolvers import usage as usage_resolvers
from callmeter.schema.billing import Invoice
from callmeter.schema.types import (
    Agent,
    AgentUsage,
    Call,
    CallConnection,
    CallEdge,
    CallStatus,
    MonthlyUsage,
    PageInfo,
)


@strawberry.type
class Usage:
    user_id: strawberry.Private[int]

    @strawberry.field
    async def current(self, info: strawberry.Info) -> MonthlyUsage:
        return await self._month(info, Month.current())

    @strawberry.field
    async def month(self, info: strawberry.Info, month: str) -> MonthlyUsage:
        return await self._month(info, Month.parse(month))

    @strawberry.field
    async def history(
        self,
        info: strawberry.Info,
        from_: Annotated[str | None, strawberry.argument(name="from")] = None,
        to: str | None = None,
    ) -> list[MonthlyUsage]:
        ctx = info.context
        async with ctx.db.connection() as conn:
            summaries = await usage_resolvers.history(
                conn,
                user_id=self.user_id,
                first=Month.parse(from_) if from_ else None,
                last=Month.parse(to) if to else None,
                default_plan=ctx.default_plan,
            )
        return [MonthlyUsage.from_summary(summary) for summary in summaries]

    @strawberry.field
    async def calls(
        self,
        info: strawberry.Info,
        first: int | None = 50,  # null: the default, as API.md's `Int = 50`
        after: str | None = None,
        status: CallStatus | None = None,
        agent_id: strawberry.ID | None = None,
    ) -> CallConnection:
        async with info.context.db.connection() as conn:
            page = await call_resolvers.call_page(
                conn,
                user_id=self.user_id,
                first=first,
                after=after,
                status=status.name if status else None,
                agent_id=agent_id,
            )
        edges = [
            CallEdge(cursor=call_resolvers.encode_cursor(row), node=Call.from_row(row)) for row in page.calls
        ]
        return CallConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                has_previous_page=page.has_previous_page,
                start_cursor=edges[0].cursor if edges else None,
                end_cursor=edges[-1].cursor if edges else None,
            ),
        )

    @strawberry.field
    async def call(self, info: strawberry.Info, call_sid: str) -> Call | None:
        async with info.context.db.connection() as conn:
            row = await calls.fetch_call(conn, user_id=self.user_id, call_sid=call_sid)
        return Call.from_row(row) if row else None

    @strawberry.field
    async def active_calls(self, info: strawberry.Info) -> list[Call]:
        async with info.context.db.connection() as conn:
            rows = await calls.list_active_calls(conn, user_id=self.user_id)
        return [Call.from_row(row) for row in rows]

    @strawberry.field
    async def invoice(self, info: strawberry.Info, month: str) -> Invoice:
        ctx = info.context
        async with ctx.db.connection() as conn:
            view = await invoice_resolvers.invoice_for(
                conn, user_id=self.user_id, month=Month.parse(month), default_plan=ctx.default_plan
            )
        return Invoice.from_view(view, viewer_user_id=ctx.require_viewer().user_id)

    @strawberry.field
    async def invoices(self, info: strawberry.Info) -> list[Invoice]:
        ctx = info.context
        async with ctx.db.connection() as conn:
            views = await invoice_resolvers.invoices_of(
                conn, user_id=self.user_id, default_plan=ctx.default_plan
            )
        viewer = ctx.require_viewer().user_id
        return [Invoice.from_view(view, viewer_user_id=viewer) for view in views]

    @strawberry.field(description="Completed calls of a month per agent, most minutes first.")
    async def agent_usage(self, info: strawberry.Info, month: str | None = None) -> list[AgentUsage]:
        wanted = Month.parse(month) if month else Month.current()
        async with info.context.db.connection() as conn:
            rows = await calls.usage_by_agent(conn, user_id=self.user_id, month=str(wanted))
            found = await agents.fetch_agents(conn, ids=[row.agent_id for row in rows if row.agent_id])
        by_id = {agent.id: Agent.from_row(agent) for agent in found}
        return [
            AgentUsage(
                agent=by_id.get(row.agent_id or 0),
                total_calls=row.total_calls,
                total_seconds=row.total_seconds,
                total_minutes=float(minutes_of(row.total_seconds)),
                total_cost_usd=row.total_cost_usd,
            )
            for row in rows
        ]

    async def _month(self, info: strawberry.Info, month: Month) -> MonthlyUsage:
        ctx = info.context
        async with ctx.db.connection() as conn:
            summary = await usage_resolvers.month_summary(
                conn, user_id=self.user_id, month=month, default_plan=ctx.default_plan
            )
        return MonthlyUsage.from_summary(summary)
