"""Call history pages (keyset cursors), one call, and the calls in progress."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from callmeter.call_lifecycle import CallStatus
from callmeter.db import calls
from callmeter.db.calls import with_meters
from callmeter.db.types import to_utc
from callmeter.errors import BadInputError
from callmeter.inputs import MAX_ID, parse_id
from callmeter.resolvers.services import Services
from callmeter.rows import CallRow

MAX_PAGE = 500
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class CallPage:
    calls: list[CallRow]
    has_next_page: bool
    has_previous_page: bool


def encode_cursor(call: CallRow) -> str:
    return _encode(f"{call.sort_at.isoformat()}|{call.id}")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The position a cursor of `encode_cursor` names; anything else is bad input."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, call_id = raw.split("|")
        position = to_utc(datetime.fromisoformat(moment)), int(call_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        position = None
    if position is None or not 0 < position[1] <= MAX_ID or cursor != _encode(raw):
        raise BadInputError("`after` is not a cursor this service gave out")
    return position


def _encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def check_page_size(first: int | None, name: str = "first") -> int:
    """A page size of 1 to MAX_PAGE; None (GraphQL's explicit null) is the default."""
    if first is None:
        return DEFAULT_PAGE
    if not 1 <= first <= MAX_PAGE:
        raise BadInputError(f"{name} must be between 1 and {MAX_PAGE}, got {first}")
    return first


async def call_page(
    services: Services,
    *,
    user_id: int,
    first: int | None,
    after: str | None = None,
    status: CallStatus | None = None,
    agent_id: object | None = None,
) -> CallPage:
    first = check_page_size(first)
    before = decode_cursor(after) if after else None
    agent = parse_id(agent_id, "agentId") if agent_id not in (None, "") else None
    async with services.db.connection() as conn:
        rows = await calls.list_calls(
            conn, user_id=user_id, limit=first + 1, before=before, status=status, agent_id=agent
        )
        rows = await with_meters(conn, rows)
    return CallPage(rows[:first], has_next_page=len(rows) > first, has_previous_page=bool(after))


async def find_call(services: Services, *, user_id: int, call_sid: str) -> CallRow | None:
    async with services.db.connection() as conn:
        found = await calls.fetch_call(conn, user_id=user_id, call_sid=call_sid)
        return None if found is None else (await with_meters(conn, [found]))[0]


async def active_calls(services: Services, *, user_id: int) -> list[CallRow]:
    """The user's answered, unfinished calls, newest first."""
    async with services.db.connection() as conn:
        return await with_meters(conn, await calls.list_active_calls(conn, user_id=user_id))


async def calls_by_ids(services: Services, *, ids: Sequence[int]) -> list[CallRow]:
    async with services.db.connection() as conn:
        return await with_meters(conn, await calls.fetch_calls_by_ids(conn, ids=ids))


async def count_active_calls(services: Services) -> int:
    """Calls in progress, all users (for /metrics)."""
    async with services.db.connection() as conn:
        return await calls.count_active_calls(conn)
