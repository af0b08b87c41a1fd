"""Usage events whose call never appeared: after a day of waiting (db/meters.py) they are billed in
the month they occurred in, with no call, by one process of a deployment every minute."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from callmeter.db import meters
from callmeter.db.locks import job_lock
from callmeter.resolvers.services import Services

log = logging.getLogger("callmeter.meters")

INTERVAL_SECONDS = 60


async def bill_overdue_once(services: Services, *, now: datetime | None = None) -> int:
    """Bill every overdue event; how many."""
    now = now or datetime.now(UTC)
    async with services.db.connection() as conn:
        users = await meters.users_with_overdue(conn, now=now)
    billed = 0
    for user_id in users:
        async with services.db.transaction() as conn:
            found = await meters.bill_overdue(
                conn, user_id=user_id, now=now, default_plan=services.default_plan
            )
        if found:
            log.warning(
                "user %s: %s usage event(s) billed without their call, which never appeared", user_id, found
            )
        billed += found
    return billed


async def bill_overdue_periodically(services: Services) -> None:
    """The `serve` background task."""
    while True:
        await asyncio.sleep(INTERVAL_SECONDS)
        try:
            async with job_lock(services.db, name="meters") as mine:
                if mine:
                    await bill_overdue_once(services)
        except asyncio.CancelledError:
            raise
        except Exception:  # the next pass tries again
            log.exception("billing overdue usage events failed")
