"""`monthly_usage`: the per-user, per-month roll-up that completed calls are added to."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert

from callmeter.billing.credits import MonthDraw
from callmeter.billing.usage import MonthTotals
from callmeter.db.connection import Connection
from callmeter.db.prepared import Prepared
from callmeter.db.tables import monthly_usage
from callmeter.db.types import to_decimal
from callmeter.months import Month


def month_draw(row: Any) -> MonthDraw:
    """What a month has charged to a prepaid balance (billing/credits.py)."""
    if row is None or row["credit_base_usd"] is None:
        return MonthDraw(None, Decimal("0.00"))
    return MonthDraw(to_decimal(row["credit_base_usd"]), to_decimal(row["drawn_usd"]))


def _totals(row: Any) -> MonthTotals:
    return MonthTotals(
        row["user_id"],
        Month.stored(row["month"]),
        row["total_calls"],
        row["total_seconds"],
        row["billable_seconds"],
        to_decimal(row["usage_charge_usd"]),
    )


_FETCH_MONTH = Prepared(
    select(monthly_usage).where(
        monthly_usage.c.user_id == bindparam("user_id"), monthly_usage.c.month == bindparam("month")
    )
)


async def fetch_month(conn: Connection, *, user_id: int, month: Month) -> MonthTotals:
    return await fetch_stored_month(conn, user_id=user_id, month=month) or MonthTotals.empty(user_id, month)


async def fetch_stored_month(conn: Connection, *, user_id: int, month: Month) -> MonthTotals | None:
    """The month as stored; None if nothing has been counted into it yet."""
    row = await _FETCH_MONTH.fetch_one(conn, user_id=user_id, month=str(month))
    return _totals(row) if row else None


async def ensure_month(
    conn: Connection, *, user_id: int, month: Month, credit_base_usd: Decimal | None
) -> None:
    """Store the month with no calls if it is not stored yet (a month billed for its fee alone)."""
    await conn.execute(
        insert(monthly_usage)
        .values(
            user_id=user_id,
            month=str(month),
            total_calls=0,
            total_seconds=0,
            billable_seconds=0,
            usage_charge_usd=Decimal(0),
            updated_at=datetime.now(UTC),
            credit_base_usd=credit_base_usd,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "month"])
    )


_FETCH_MONTHS = Prepared(
    select(monthly_usage)
    .where(
        monthly_usage.c.user_id == bindparam("user_id"),
        monthly_usage.c.month >= bindparam("first"),
        monthly_usage.c.month <= bindparam("last"),
    )
    .order_by(monthly_usage.c.month)
)


async def fetch_months(
    conn: Connection, *, user_id: int, first: Month | None = None, last: Month | None = None
) -> list[MonthTotals]:
    """The months with usage between `first` and `last` (inclusive), oldest first."""
    rows = await _FETCH_MONTHS.fetch_all(
        conn, user_id=user_id, first=str(first or "0000-00"), last=str(last or "9999-99")
    )
    return [_totals(row) for row in rows]


_WRITE = insert(monthly_usage)
_WRITE_MONTH = Prepared(
    _WRITE.on_conflict_do_update(
        index_elements=["user_id", "month"],
        set_={
            name: _WRITE.excluded[name]
            for name in ("total_calls", "total_seconds", "billable_seconds", "usage_charge_usd", "updated_at")
        },
    ),
    columns=(
        "user_id",
        "month",
        "total_calls",
        "total_seconds",
        "billable_seconds",
        "usage_charge_usd",
        "updated_at",
        "credit_base_usd",
    ),
)
_SET_MONTH_CHARGE = Prepared(
    monthly_usage.update().where(
        monthly_usage.c.user_id == bindparam("key_user_id"), monthly_usage.c.month == bindparam("key_month")
    ),
    columns=("usage_charge_usd",),
)


async def write_month(conn: Connection, *, totals: MonthTotals, credit_base_usd: Decimal | None) -> None:
    """Store the month's totals as they are now (a new month with `credit_base_usd`: 0 for a prepaid
    customer, None for a postpaid one). The caller read the month under the user's billing lock,
    which every writer of a month takes, so nothing was counted into it in between."""
    await _WRITE_MONTH.execute(
        conn,
        user_id=totals.user_id,
        month=str(totals.month),
        total_calls=totals.total_calls,
        total_seconds=totals.total_seconds,
        billable_seconds=totals.billable_seconds,
        usage_charge_usd=totals.usage_charge_usd,
        updated_at=datetime.now(UTC),
        credit_base_usd=credit_base_usd,
    )


def month_read(row: Mapping[str, Any] | None, user_id: int, month: Month) -> MonthTotals:
    """A month as read (None: nothing counted into it yet)."""
    return _totals(row) if row is not None else MonthTotals.empty(user_id, month)


async def set_month_charge(
    conn: Connection, *, user_id: int, month: Month, usage_charge_usd: Decimal
) -> None:
    await _SET_MONTH_CHARGE.execute(
        conn, key_user_id=user_id, key_month=str(month), usage_charge_usd=usage_charge_usd
    )
