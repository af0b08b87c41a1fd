"""Live subscriptions: the resolvers' streams of rows, mapped to GraphQL types as they come."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

import strawberry

from callmeter.resolvers import live
from callmeter.resolvers.scope import target_user
from callmeter.schema.context import Info
from callmeter.schema.types import Call, CallEventKind, MonthlyUsage


@strawberry.type
class CallEvent:
    kind: CallEventKind
    call: Call


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def active_calls(
        self, info: Info, user_id: strawberry.ID | None = None
    ) -> AsyncGenerator[list[Call], None]:
        owner = target_user(info.context.require_viewer(), user_id)
        async with aclosing(live.active_call_lists(info.context.services, user_id=owner)) as lists:
            async for rows in lists:
                info.context.renew_loaders()
                yield [Call.from_row(row) for row in rows]

    @strawberry.subscription
    async def call_events(
        self, info: Info, user_id: strawberry.ID | None = None
    ) -> AsyncGenerator[CallEvent, None]:
        owner = target_user(info.context.require_viewer(), user_id)
        async with aclosing(live.call_changes(info.context.services, user_id=owner)) as changes:
            async for kind, row in changes:
                info.context.renew_loaders()
                yield CallEvent(kind=kind, call=Call.from_row(row))

    @strawberry.subscription
    async def usage_updated(
        self, info: Info, user_id: strawberry.ID | None = None
    ) -> AsyncGenerator[MonthlyUsage, None]:
        owner = target_user(info.context.require_viewer(), user_id)
        async with aclosing(live.usage_changes(info.context.services, user_id=owner)) as summaries:
            async for summary in summaries:
                yield MonthlyUsage.from_summary(summary)
