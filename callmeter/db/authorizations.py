"""`call_authorizations`: slots held for calls the gate allowed, until the call's first callback
takes its slot over or the hold expires (`HOLD_SECONDS`).

Slots are counted and taken with the customer's row locked (`spend.lock_agent_customer`, or
`customers.ensure_customer(lock=True)` for a customer seen first) in the deciding transaction, so
N simultaneous requests for k free slots get exactly k, across processes on PostgreSQL; SQLite's
write transactions are serialised already.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import String, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY

from callmeter.db.connection import Connection
from callmeter.db.prepared import Prepared
from callmeter.db.tables import call_authorizations

HOLD_SECONDS = 60

# The slots a user holds at `now` (bind parameters `user_id`, `now`).
HELD = (
    select(func.count().label("held"))
    .select_from(call_authorizations)
    .where(
        call_authorizations.c.user_id == bindparam("user_id"),
        call_authorizations.c.released_at.is_(None),
        call_authorizations.c.expires_at > bindparam("now"),
    )
)
_HOLD = Prepared(
    call_authorizations.insert(),
    columns=("id", "user_id", "agent_id", "call_sid", "created_at", "expires_at"),
)
_RELEASE = Prepared(
    call_authorizations.update().where(
        call_authorizations.c.released_at.is_(None),
        or_(
            call_authorizations.c.id == bindparam("authorization_id"),
            call_authorizations.c.call_sid == bindparam("call_sid"),
        ),
    ),
    columns=("released_at",),
)


async def hold_slot(
    conn: Connection, *, user_id: int, agent_id: int, call_sid: str | None, now: datetime
) -> str:
    """Hold a slot for a call about to start; its authorization id."""
    authorization_id = f"az_{secrets.token_urlsafe(18)}"
    await _HOLD.execute(
        conn,
        id=authorization_id,
        user_id=user_id,
        agent_id=agent_id,
        call_sid=call_sid,
        created_at=now,
        expires_at=now + timedelta(seconds=HOLD_SECONDS),
    )
    return authorization_id


async def release_slot(
    conn: Connection, *, call_sid: str, authorization_id: str | None, now: datetime
) -> None:
    """The call has shown up: it counts as active itself now, so its slot is free again."""
    await _RELEASE.execute(conn, authorization_id=authorization_id or "", call_sid=call_sid, released_at=now)


_RELEASE_MANY = Prepared(
    call_authorizations.update().where(
        call_authorizations.c.released_at.is_(None),
        or_(
            call_authorizations.c.id == func.any(bindparam("authorization_ids", type_=ARRAY(String))),
            call_authorizations.c.call_sid == func.any(bindparam("call_sids", type_=ARRAY(String))),
        ),
    ),
    columns=("released_at",),
)


async def release_slots(
    conn: Connection, *, call_sids: list[str], authorization_ids: list[str], now: datetime
) -> None:
    """`release_slot` for a batch of calls (PostgreSQL), in one statement."""
    if call_sids or authorization_ids:
        await _RELEASE_MANY.execute(
            conn, call_sids=call_sids, authorization_ids=authorization_ids, released_at=now
        )
