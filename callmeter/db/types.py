"""Column types that behave the same on PostgreSQL and SQLite.

Money is exact `Decimal` in and out: `numeric` on PostgreSQL, text on SQLite (whose NUMERIC affinity
would keep a binary float). Times are aware UTC datetimes: `timestamptz` on PostgreSQL, and on SQLite
a fixed-width UTC text that sorts in time order.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_CENT = Decimal("0.01")


class Money(TypeDecorator[Decimal]):
    impl = Numeric(18, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(18, 6, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = to_decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else to_decimal(value)


class Quantity(Money):
    """A meter's quantity: exact, up to 10^24 with six decimal places (text on SQLite, like Money)."""

    impl = Numeric(30, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(30, 6, asdecimal=True))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else to_quantity(value)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(26))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = to_utc(value)
        if dialect.name != "sqlite":
            return value
        # isoformat, not strftime: "%Y" does not pad years before 1000 on every platform.
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else to_utc(value)


def to_decimal(value: Any) -> Decimal:
    """A stored amount as `Decimal`, shown in cents unless it has finer digits ("0.12", "0.055")."""
    if isinstance(value, float):
        raise TypeError("money must never be a float")
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    cents = amount.quantize(_CENT)
    return cents if cents == amount else amount.normalize()


def to_quantity(value: Any) -> Decimal:
    """A stored quantity as `Decimal`, without trailing zeros ("1523", "12.5")."""
    if isinstance(value, float):
        raise TypeError("quantities must never be floats")
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    whole = amount.to_integral_value()
    return whole.quantize(Decimal(1)) if whole == amount else amount.normalize()


def to_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.strptime(value, _SQLITE_TIME) if "." in value else datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
