"""Callbacks that matched no agent, kept for an admin to see."""

from __future__ import annotations

from callmeter.db import events
from callmeter.resolvers.calls import check_page_size
from callmeter.resolvers.services import Services
from callmeter.rows import WebhookEventRow


async def unattributed_events(services: Services, *, first: int | None) -> list[WebhookEventRow]:
    limit = check_page_size(first)
    async with services.db.connection() as conn:
        return await events.list_unattributed(conn, limit=limit)
