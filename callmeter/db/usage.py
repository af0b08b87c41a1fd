"""`monthly_usage`: the per-user, per-month roll-up that completed calls are added to."""

from __future__ import annotations

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


_ADD = insert(monthly_usage)
_ADD_COMPLETED_CALL = Prepared(
    _ADD.on_conflict_do_update(
        index_elements=["user_id", "month"],
        set_={
            "total_calls": monthly_usage.c.total_calls + 1,
            "total_seconds": monthly_usage.c.total_seconds + _ADD.excluded.total_seconds,
            "billable_seconds": monthly_usage.c.billable_seconds + _ADD.excluded.billable_seconds,
            "updated_at": _ADD.excluded.updated_at,
        },
    ).returning(*monthly_usage.c),
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


async def add_completed_call(
    conn: Connection,
    *,
    user_id: int,
    month: Month,
    seconds: int,
    billable_seconds: int,
    credit_base_usd: Decimal | None,
) -> tuple[MonthTotals, MonthDraw]:
    """Count one completed call into its month and return the month after it, with what it has
    charged to a prepaid balance so far (`credit_base_usd`: a new month's base, 0 for a prepaid
    customer, None for a postpaid one).

    On PostgreSQL the upsert locks the month's row until the caller's transaction ends, so the
    charge the caller then computes from these totals cannot interleave with another call's.
    """
    row = await _ADD_COMPLETED_CALL.fetch_one(
        conn,
        user_id=user_id,
        month=str(month),
        total_calls=1,
        total_seconds=seconds,
        billable_seconds=billable_seconds,
        usage_charge_usd=Decimal(0),
        updated_at=datetime.now(UTC),
        credit_base_usd=credit_base_usd,
    )
    return _totals(row), month_draw(row)


async def set_month_charge(
    conn: Connection, *, user_id: int, month: Month, usage_charge_usd: Decimal
) -> None:
    await _SET_MONTH_CHARGE.execute(
        conn, key_user_id=user_id, key_month=str(month), usage_charge_usd=usage_charge_usd
    )
