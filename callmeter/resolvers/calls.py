"""Call history pages (keyset cursors), one call, and the calls in progress."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from callmeter.db import calls
from callmeter.db.calls import CallRow
from callmeter.db.connection import Connection
from callmeter.db.types import to_utc
from callmeter.errors import BadInputError
from callmeter.resolvers.scope import parse_id

MAX_PAGE = 500
STATUSES = {"ACTIVE": "active", "COMPLETED": "completed", "FAILED": "failed"}


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
    if position is None or not 0 < position[1] < 2**63 or cursor != _encode(raw):
        raise BadInputError("`after` is not a cursor this service gave out")
    return position


def _encode(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


DEFAULT_PAGE = 50


def check_page_size(first: int | None, name: str = "first") -> int:
    """A page size of 1 to MAX_PAGE; None (GraphQL's explicit null) is the default."""
    if first is None:
        return DEFAULT_PAGE
    if not 1 <= first <= MAX_PAGE:
        raise BadInputError(f"{name} must be between 1 and {MAX_PAGE}, got {first}")
    return first


async def call_page(
    conn: Connection,
    *,
    user_id: int,
    first: int | None,
    after: str | None = None,
    status: str | None = None,
    agent_id: object | None = None,
) -> CallPage:
    first = check_page_size(first)
    rows = await calls.list_calls(
        conn,
        user_id=user_id,
        limit=first + 1,
        before=decode_cursor(after) if after else None,
        status=STATUSES[status] if status else None,
        agent_id=parse_id(agent_id, "agentId") if agent_id not in (None, "") else None,
    )
    return CallPage(rows[:first], has_next_page=len(rows) > first, has_previous_page=bool(after))
