"""Live subscriptions: the resolvers' streams of rows, mapped to GraphQL types as they come."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from typing import Any, TypeVar

import strawberry

from callmeter.resolvers import live
from callmeter.resolvers.scope import target_user
from callmeter.resolvers.services import Services
from callmeter.schema.context import Info
from callmeter.schema.types import Call, CallEventKind, MonthlyUsage

T = TypeVar("T")


@strawberry.type
class CallEvent:
    kind: CallEventKind
    call: Call


async def _mapped(
    info: Info,
    user_id: strawberry.ID | None,
    stream: Callable[..., AsyncGenerator[Any, None]],
    shape: Callable[[Any], T],
) -> AsyncGenerator[T, None]:
    """The viewer's (or, for an admin, `user_id`'s) stream, each item mapped with fresh loaders."""
    services: Services = info.context.services
    owner = target_user(info.context.require_viewer(), user_id)
    async with aclosing(stream(services, user_id=owner)) as items:
        async for item in items:
            info.context.renew_loaders()
            yield shape(item)


@strawberry.type
class Subscription:
    @strawberry.subscription
    def active_calls(self, info: Info, user_id: strawberry.ID | None = None) -> AsyncIterator[list[Call]]:
        return _mapped(
            info, user_id, live.active_call_lists, lambda rows: [Call.from_row(row) for row in rows]
        )

    @strawberry.subscription
    def call_events(self, info: Info, user_id: strawberry.ID | None = None) -> AsyncIterator[CallEvent]:
        return _mapped(
            info,
            user_id,
            live.call_changes,
            lambda change: CallEvent(kind=change[0], call=Call.from_row(change[1])),
        )

    @strawberry.subscription
    def usage_updated(self, info: Info, user_id: strawberry.ID | None = None) -> AsyncIterator[MonthlyUsage]:
        return _mapped(info, user_id, live.usage_changes, MonthlyUsage.from_summary)
