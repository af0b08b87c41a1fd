"""`Usage`: one user's months and calls, as the `usage` query returns them. The viewer was
authorised for `user_id` when `Query.usage` made this object."""

from __future__ import annotations

from typing import Annotated

import strawberry

from callmeter.months import Month
from callmeter.resolvers import alerts, calls, customers, invoices, usage
from callmeter.schema.alerts import UsageAlert
from callmeter.schema.billing import Invoice
from callmeter.schema.context import Info
from callmeter.schema.customers import Customer
from callmeter.schema.types import (
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
    async def customer(self, info: Info) -> Customer:
        return Customer.from_row(await customers.customer(info.context.services, user_id=self.user_id))

    @strawberry.field(description="The customer's usage alerts.")
    async def alerts(self, info: Info) -> list[UsageAlert]:
        rows = await alerts.list_alerts(info.context.services, user_id=self.user_id)
        return [UsageAlert.from_row(row) for row in rows]

    @strawberry.field(description="This month in the customer's billing time zone.")
    async def current(self, info: Info) -> MonthlyUsage:
        summary = await usage.current_usage(info.context.services, user_id=self.user_id)
        return MonthlyUsage.from_summary(summary)

    @strawberry.field
    async def month(self, info: Info, month: str) -> MonthlyUsage:
        summary = await usage.month_usage(
            info.context.services, user_id=self.user_id, month=Month.parse(month)
        )
        return MonthlyUsage.from_summary(summary)

    @strawberry.field
    async def history(
        self,
        info: Info,
        from_: Annotated[str | None, strawberry.argument(name="from")] = None,
        to: str | None = None,
    ) -> list[MonthlyUsage]:
        summaries = await usage.history(
            info.context.services,
            user_id=self.user_id,
            first=Month.parse(from_) if from_ else None,
            last=Month.parse(to) if to else None,
        )
        return [MonthlyUsage.from_summary(summary) for summary in summaries]

    @strawberry.field
    async def calls(
        self,
        info: Info,
        first: int | None = 50,  # null: the default, as API.md's `Int = 50`
        after: str | None = None,
        status: CallStatus | None = None,
        agent_id: strawberry.ID | None = None,
    ) -> CallConnection:
        page = await calls.call_page(
            info.context.services,
            user_id=self.user_id,
            first=first,
            after=after,
            status=status,
            agent_id=agent_id,
        )
        edges = [CallEdge(cursor=calls.encode_cursor(row), node=Call.from_row(row)) for row in page.calls]
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
    async def call(self, info: Info, call_sid: str) -> Call | None:
        row = await calls.find_call(info.context.services, user_id=self.user_id, call_sid=call_sid)
        return Call.from_row(row) if row else None

    @strawberry.field
    async def active_calls(self, info: Info) -> list[Call]:
        rows = await calls.active_calls(info.context.services, user_id=self.user_id)
        return [Call.from_row(row) for row in rows]

    @strawberry.field
    async def invoice(self, info: Info, month: str) -> Invoice:
        view = await invoices.invoice_for(
            info.context.services, user_id=self.user_id, month=Month.parse(month)
        )
        return Invoice.from_view(view, viewer_user_id=info.context.require_viewer().user_id)

    @strawberry.field
    async def invoices(self, info: Info) -> list[Invoice]:
        views = await invoices.invoices_of(info.context.services, user_id=self.user_id)
        viewer = info.context.require_viewer().user_id
        return [Invoice.from_view(view, viewer_user_id=viewer) for view in views]

    @strawberry.field(description="Completed calls of a month per agent, most minutes first.")
    async def agent_usage(self, info: Info, month: str | None = None) -> list[AgentUsage]:
        rows = await usage.agent_usage(
            info.context.services, user_id=self.user_id, month=Month.parse(month) if month else None
        )
        return [AgentUsage.from_row(row) for row in rows]
