"""`monthly_usage`: the per-user, per-month roll-up that completed calls are added to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert

from callmeter.db.connection import Connection
from callmeter.db.prepared import Prepared
from callmeter.db.tables import monthly_usage
from callmeter.db.types import to_decimal


@dataclass(frozen=True)
class MonthlyUsageRow:
    user_id: int
    month: str
    total_calls: int
    total_seconds: int
    billable_seconds: int
    usage_charge_usd: Decimal

    @classmethod
    def from_record(cls, row: Any) -> MonthlyUsageRow:
        return cls(
            row["user_id"],
            row["month"],
            row["total_calls"],
            row["total_seconds"],
            row["billable_seconds"],
            to_decimal(row["usage_charge_usd"]),
        )

    @classmethod
    def empty(cls, user_id: int, month: str) -> MonthlyUsageRow:
        return cls(user_id, month, 0, 0, 0, Decimal("0.00"))


_FETCH_MONTH = Prepared(
    select(monthly_usage).where(
        monthly_usage.c.user_id == bindparam("user_id"), monthly_usage.c.month == bindparam("month")
    )
)


async def fetch_month(conn: Connection, *, user_id: int, month: str) -> MonthlyUsageRow:
    row = await _FETCH_MONTH.fetch_one(conn, user_id=user_id, month=month)
    return MonthlyUsageRow.from_record(row) if row else MonthlyUsageRow.empty(user_id, month)


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
    conn: Connection, *, user_id: int, first: str | None = None, last: str | None = None
) -> list[MonthlyUsageRow]:
    """The months with usage between `first` and `last` (inclusive), oldest first."""
    rows = await _FETCH_MONTHS.fetch_all(
        conn, user_id=user_id, first=first or "0000-00", last=last or "9999-99"
    )
    return [MonthlyUsageRow.from_record(row) for row in rows]


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
    ),
)
_SET_MONTH_CHARGE = Prepared(
    monthly_usage.update().where(
        monthly_usage.c.user_id == bindparam("key_user_id"), monthly_usage.c.month == bindparam("key_month")
    ),
    columns=("usage_charge_usd",),
)


async def add_completed_call(
    conn: Connection, *, user_id: int, month: str, seconds: int, billable_seconds: int
) -> MonthlyUsageRow:
    """Count one completed call into its month and return the month after it.

    On PostgreSQL the upsert locks the month's row until the caller's transaction ends, so the
    charge the caller then computes from these totals cannot interleave with another call's.
    """
    row = await _ADD_COMPLETED_CALL.fetch_one(
        conn,
        user_id=user_id,
        month=month,
        total_calls=1,
        total_seconds=seconds,
        billable_seconds=billable_seconds,
        usage_charge_usd=Decimal(0),
        updated_at=datetime.now(UTC),
    )
    return MonthlyUsageRow.from_record(row)


async def set_month_charge(conn: Connection, *, user_id: int, month: str, usage_charge_usd: Decimal) -> None:
    await _SET_MONTH_CHARGE.execute(
        conn, key_user_id=user_id, key_month=month, usage_charge_usd=usage_charge_usd
    )
