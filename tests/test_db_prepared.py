"""`db/prepared.py`: statements compiled once behave like `databases`' own, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import bindparam, select

from callmeter.db.prepared import Prepared
from callmeter.db.tables import monthly_usage
from callmeter.db.types import to_decimal, to_utc
from tests.factories import open_db

# Every column that must be given (not the credit columns: nullable or with a server default).
INSERT = Prepared(
    monthly_usage.insert(),
    columns=tuple(
        column.name for column in monthly_usage.c if not column.nullable and column.server_default is None
    ),
)
BY_USER = Prepared(
    select(monthly_usage)
    .where(monthly_usage.c.user_id == bindparam("user_id"))
    .order_by(monthly_usage.c.month)
)


async def test_typed_values_round_trip_and_a_missing_parameter_is_an_error(clean_database):
    db = await open_db(clean_database)
    at = datetime(2026, 11, 24, 12, 30, 1, 250000, tzinfo=UTC)
    try:
        async with db.transaction() as conn:
            for month, charge in [("2026-10", Decimal("0.10")), ("2026-11", Decimal("12.345678"))]:
                await INSERT.execute(
                    conn,
                    user_id=7,
                    month=month,
                    total_calls=1,
                    total_seconds=120,
                    billable_seconds=120,
                    usage_charge_usd=charge,
                    updated_at=at,
                )
        async with db.connection() as conn:
            rows = await BY_USER.fetch_all(conn, user_id=7)
            assert [row["month"] for row in rows] == ["2026-10", "2026-11"]
            assert [to_decimal(row["usage_charge_usd"]) for row in rows] == [
                Decimal("0.10"),
                Decimal("12.345678"),
            ]
            assert to_utc(rows[0]["updated_at"]) == at
            assert await BY_USER.fetch_one(conn, user_id=8) is None
            assert await BY_USER.fetch_val(conn, user_id=7) == 7  # the first column
            with pytest.raises(TypeError, match="missing bind parameters: user_id"):
                await BY_USER.fetch_all(conn)
    finally:
        await db.disconnect()
