"""The meters' tables (db/meters.py), on the metadata of `tables.py` (`callmeter.db` imports this
module, so the metadata always holds them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    text,
)

from callmeter.db.tables import BigId, metadata
from callmeter.db.types import Money, Quantity, UTCDateTime

# One row per usage event, stored once per customer and idempotency key. `month` and `cost_usd` are
# set when it is billed: at once for an event without a call or of a call already known, else when
# its call's first callback is recorded (or, for a call that never appears, after a day).
usage_events = Table(
    "usage_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False),
    Column("idempotency_key", String(200), nullable=False),
    Column("call_sid", String(64)),
    Column("meter", String(64), nullable=False),
    Column("quantity", Quantity, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    # No foreign key: its check would lock the call's row (KEY SHARE) under the billing lock, the
    # reverse of the recording path's order. Calls are never deleted.
    Column("call_id", BigInteger),
    Column("month", String(7)),  # NULL: waiting for its call
    Column("cost_usd", Money),  # what it added to its meter's month charge
    Index("ux_usage_events_user_key", "user_id", "idempotency_key", unique=True),
    Index("ix_usage_events_call", "call_id"),
    Index("ix_usage_events_user_month_meter", "user_id", "month", "meter", "id"),
    # Only the few waiting for their call: what a new call's first callback looks up.
    Index(
        "ix_usage_events_waiting",
        "user_id",
        "call_sid",
        postgresql_where=text("month IS NULL"),
        sqlite_where=text("month IS NULL"),
    ),
)

# A meter's month: the sum of its billed events and the month's charge for it (the events' costs
# add up to it), the meters' part of `monthly_usage.usage_charge_usd`.
meter_usage = Table(
    "meter_usage",
    metadata,
    Column("user_id", BigInteger, nullable=False),
    Column("month", String(7), nullable=False),
    Column("meter", String(64), nullable=False),
    Column("quantity", Quantity, nullable=False),
    Column("charge_usd", Money, nullable=False),
    Column("events", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    PrimaryKeyConstraint("user_id", "month", "meter"),
)
