"""The outgoing webhooks' and alerts' tables (workers/deliveries.py), on the metadata of `tables.py`
(`callmeter.db` imports this module, so the metadata always holds them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
    text,
)

from callmeter.db.tables import BigId, metadata
from callmeter.db.types import Money, UTCDateTime

# Outgoing webhooks (workers/deliveries.py). `events` is ",type,type," so one LIKE finds subscribers.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("url", String(2000), nullable=False),
    Column("events", Text, nullable=False),
    Column("description", String(500)),
    Column("secret", Text, nullable=False),  # sealed (sealing.py)
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("failing_since", UTCDateTime),  # the first failure since the last success
    Column("created_at", UTCDateTime, nullable=False),
    Column("deleted_at", UTCDateTime),
)

# The transactional outbox: an event is written in the transaction that caused it, with one delivery
# per endpoint subscribed then; nothing is written for a change that rolls back.
outbox_events = Table(
    "outbox_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(40), nullable=False, unique=True),
    Column("type", String(40), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("body", Text, nullable=False),  # the exact JSON that is signed and sent
    Column("created_at", UTCDateTime, nullable=False),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("endpoint_id", BigInteger, ForeignKey("webhook_endpoints.id"), nullable=False),
    Column("outbox_id", BigInteger, ForeignKey("outbox_events.id"), nullable=False),
    Column("user_id", BigInteger, nullable=False),
    Column("status", String(16), nullable=False),  # pending / succeeded / failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),  # when pending: due then (or leased until then)
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
        sqlite_where=text("status = 'pending'"),
    ),
    Index("ix_webhook_deliveries_order", "endpoint_id", "user_id", "id"),
)

# Every attempt of every delivery, kept.
webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("delivery_id", BigInteger, ForeignKey("webhook_deliveries.id"), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
)


# A customer's usage alert: fires `usage.threshold_reached` once a month (in their zone).
usage_alerts = Table(
    "usage_alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("metric", String(32), nullable=False),  # billing.alerts.AlertMetric
    Column("threshold", Money, nullable=False),
    Column("name", String(200)),
    Column("last_fired_month", String(7)),
    Column("created_at", UTCDateTime, nullable=False),
)
