"""The live streams behind the subscriptions: each re-reads, scoped to the one user it is allowed to
see, what the bus says changed. Rows out; the schema maps them."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from callmeter.billing.usage import MonthSummary
from callmeter.call_lifecycle import CallEventKind
from callmeter.db.bus import RESYNC
from callmeter.resolvers import calls, usage
from callmeter.resolvers.services import Services
from callmeter.rows import CallRow


async def _active_calls(services: Services, user_id: int) -> list[CallRow]:
    """Read once per change for all of this user's subscribers in this process."""
    return await services.bus.shared_read(
        user_id, "active_calls", lambda: calls.active_calls(services, user_id=user_id)
    )


async def active_call_lists(services: Services, *, user_id: int) -> AsyncGenerator[list[CallRow], None]:
    """The active calls now, then the whole list again whenever it changes or after a resync."""
    async with services.bus.subscribe(user_id) as inbox:
        sent = await _active_calls(services, user_id)
        yield sent
        while True:
            changes = await inbox.burst()  # a burst of changes is one new list
            current = await _active_calls(services, user_id)
            # A call that rings changes nothing here; after a resync the list is always sent again.
            if current != sent or RESYNC in changes:
                sent = current
                yield current


async def call_changes(
    services: Services, *, user_id: int
) -> AsyncGenerator[tuple[CallEventKind, CallRow], None]:
    """Every committed change of one of the user's calls, with the call as it stands now."""
    async with services.bus.subscribe(user_id) as inbox:
        while True:
            change = await inbox.get()
            if change is RESYNC:
                continue
            (row,) = await calls.calls_by_ids(services, ids=[change.call_id]) or (None,)
            if row is not None and row.user_id == user_id:
                yield change.kind, row


async def usage_changes(services: Services, *, user_id: int) -> AsyncGenerator[MonthSummary, None]:
    """The month's totals after each of the user's completed calls."""
    async with services.bus.subscribe(user_id) as inbox:
        while True:
            change = await inbox.get()
            if change is RESYNC or change.month is None:
                continue
            yield await usage.month_usage(services, user_id=user_id, month=change.month)
