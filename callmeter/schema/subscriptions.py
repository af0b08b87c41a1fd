"""Live subscriptions. Each re-reads, scoped to the user it is allowed to see, what the bus says changed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from enum import Enum

import strawberry

from callmeter.db import agents, calls
from callmeter.db.bus import RESYNC
from callmeter.months import Month
from callmeter.resolvers import usage as usage_resolvers
from callmeter.resolvers.scope import target_user
from callmeter.schema.context import Context
from callmeter.schema.types import Agent, Call, MonthlyUsage


@strawberry.enum
class CallEventKind(Enum):
    STARTED = "STARTED"
    UPDATED = "UPDATED"
    ENDED = "ENDED"


@strawberry.type
class CallEvent:
    kind: CallEventKind
    call: Call


async def _active_calls(ctx: Context, user_id: int) -> list[Call]:
    """The user's active calls, read and built once per change for all their subscribers here."""

    async def read() -> list[Call]:
        async with ctx.db.connection() as conn:
            rows = await calls.list_active_calls(conn, user_id=user_id)
            ids = sorted({row.agent_id for row in rows if row.agent_id is not None})
            found = await agents.fetch_agents(conn, ids=ids) if ids else []
        by_id = {agent.id: Agent.from_row(agent) for agent in found}
        return [Call.from_row(row, by_id.get(row.agent_id or 0)) for row in rows]

    return await ctx.bus.shared_read(user_id, "active_calls", read)


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def active_calls(
        self, info: strawberry.Info[Context, None], user_id: strawberry.ID | None = None
    ) -> AsyncGenerator[list[Call], None]:
        ctx = info.context
        owner = target_user(ctx.require_viewer(), user_id)
        async with ctx.bus.subscribe(owner) as inbox:
            sent = await _active_calls(ctx, owner)
            yield sent
            while True:
                changes = await inbox.burst()  # a burst of changes is one new list
                current = await _active_calls(ctx, owner)
                # A call that rings changes nothing here; after a resync the list is always sent again.
                if current != sent or RESYNC in changes:
                    sent = current
                    yield current

    @strawberry.subscription
    async def call_events(
        self, info: strawberry.Info[Context, None], user_id: strawberry.ID | None = None
    ) -> AsyncGenerator[CallEvent, None]:
        ctx = info.context
        owner = target_user(ctx.require_viewer(), user_id)
        async with ctx.bus.subscribe(owner) as inbox:
            while True:
                change = await inbox.get()
                if change is RESYNC:
                    continue
                ctx.renew_loaders()
                async with ctx.db.connection() as conn:
                    (row,) = await calls.fetch_calls_by_ids(conn, ids=[change.call_id]) or (None,)
                if row is not None and row.user_id == owner:
                    yield CallEvent(kind=CallEventKind(change.kind), call=Call.from_row(row))

    @strawberry.subscription
    async def usage_updated(
        self, info: strawberry.Info[Context, None], user_id: strawberry.ID | None = None
    ) -> AsyncGenerator[MonthlyUsage, None]:
        ctx = info.context
        owner = target_user(ctx.require_viewer(), user_id)
        async with ctx.bus.subscribe(owner) as inbox:
            while True:
                change = await inbox.get()
                if change is RESYNC or change.month is None:
                    continue
                async with ctx.db.connection() as conn:
                    summary = await usage_resolvers.month_summary(
                        conn, user_id=owner, month=Month.parse(change.month), default_plan=ctx.default_plan
                    )
                yield MonthlyUsage.from_summary(summary)
