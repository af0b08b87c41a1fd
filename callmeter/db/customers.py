"""`customers`: one row per billed user, made when they are first seen, with their billing calendar."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert

from callmeter.billing.limits import Limits
from callmeter.db.connection import Connection
from callmeter.db.prepared import Prepared
from callmeter.db.tables import customers
from callmeter.db.types import to_decimal
from callmeter.months import Calendar, calendar_from, calendar_to
from callmeter.rows import CustomerRow


@lru_cache(maxsize=1024)
def stored_calendar(text: str) -> Calendar:
    # Read on every event of a call: parsed once per distinct text (a Calendar is immutable).
    return calendar_from(json.loads(text))


def calendar_text(calendar: Calendar) -> str:
    """A calendar as `customers.timezones` keeps it."""
    return json.dumps(calendar_to(calendar))


def _money(value: Any) -> Decimal | None:
    return None if value is None else to_decimal(value)


def customer_row(row: Mapping[str, Any]) -> CustomerRow:
    return CustomerRow(
        user_id=row["user_id"],
        calendar=stored_calendar(row["timezones"]),
        balance_usd=_money(row["balance_usd"]),
        limits=Limits(
            monthly_spend_cap_usd=_money(row["monthly_spend_cap_usd"]),
            max_concurrent_calls=row["max_concurrent_calls"],
            enforce=bool(row["enforce"]),
            low_balance_usd=_money(row["low_balance_usd"]),
        ),
        exhausted=bool(row["exhausted"]),
        cap_reached_month=row["cap_reached_month"],
    )


_FETCH = Prepared(select(customers).where(customers.c.user_id == bindparam("user_id")))
_FETCH_LOCKED = Prepared(
    select(customers).where(customers.c.user_id == bindparam("user_id")).with_for_update()
)
_CREATE = Prepared(
    insert(customers).on_conflict_do_nothing(index_elements=["user_id"]),
    columns=("user_id", "timezones", "created_at", "enforce", "exhausted"),
)


async def fetch_customer(conn: Connection, *, user_id: int, lock: bool = False) -> CustomerRow | None:
    """The customer, or None if never seen; `lock` holds their row until the transaction ends."""
    row = await (_FETCH_LOCKED if lock else _FETCH).fetch_one(conn, user_id=user_id)
    return customer_row(row) if row else None


async def ensure_customer(
    conn: Connection, *, user_id: int, calendar: Calendar, lock: bool = False
) -> CustomerRow:
    """The customer, made now with `calendar` (the default for new customers) if never seen."""
    found = await fetch_customer(conn, user_id=user_id, lock=lock)
    if found is not None:
        return found
    await _CREATE.execute(
        conn,
        user_id=user_id,
        timezones=calendar_text(calendar),
        created_at=datetime.now(UTC),
        enforce=False,
        exhausted=False,
    )
    made = await fetch_customer(conn, user_id=user_id, lock=lock)
    assert made is not None
    return made


async def save_calendar(conn: Connection, *, user_id: int, calendar: Calendar) -> None:
    await conn.execute(
        customers.update().where(customers.c.user_id == user_id).values(timezones=calendar_text(calendar))
    )


async def save_limits(conn: Connection, *, user_id: int, limits: Limits) -> None:
    await conn.execute(
        customers.update()
        .where(customers.c.user_id == user_id)
        .values(
            monthly_spend_cap_usd=limits.monthly_spend_cap_usd,
            max_concurrent_calls=limits.max_concurrent_calls,
            enforce=limits.enforce,
            low_balance_usd=limits.low_balance_usd,
        )
    )


async def save_flags(
    conn: Connection, *, user_id: int, exhausted: bool, cap_reached_month: str | None
) -> None:
    await conn.execute(
        customers.update()
        .where(customers.c.user_id == user_id)
        .values(exhausted=exhausted, cap_reached_month=cap_reached_month)
    )
