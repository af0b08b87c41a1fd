"""The tables, in SQLAlchemy Core. Alembic's migrations under `migrations/` create exactly these.

`call_usage` keeps the seed's columns plus what the state machine needs. `monthly_usage` is the roll-up
that keeps usage reads O(1) in the number of calls. `webhook_events` keeps every distinct callback
(deduplicated on Twilio's (CallSid, SequenceNumber, CallStatus)) for audit and re-rating; the ones that
matched no agent have no `user_id` and are listed to admins.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)

from callmeter.db.types import Money, Quantity, UTCDateTime

metadata = MetaData()

# BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")

agents = Table(
    "agents",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("voice_url", String(2000)),  # where the voice gate redirects an allowed call
)

agent_numbers = Table(
    "agent_numbers",
    metadata,
    Column("number", String(32), primary_key=True),
    Column("agent_id", BigInteger, ForeignKey("agents.id"), nullable=False, index=True),
)

call_usage = Table(
    "call_usage",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), nullable=False, unique=True),
    Column("user_id", BigInteger, nullable=False),
    Column("agent_id", BigInteger, ForeignKey("agents.id"), nullable=True),
    Column("call_from", String(64)),
    Column("call_to", String(64)),
    Column("direction", String(32)),
    Column("account_sid", String(64)),
    Column("twilio_status", String(16), nullable=False),
    Column("status", String(16), nullable=False),  # active / completed / failed
    Column("duration_seconds", Integer, nullable=False, default=0),
    Column("billable_seconds", Integer, nullable=False, default=0),
    Column("cost_usd", Money, nullable=False),
    Column("first_event_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime),
    Column("ended_at", UTCDateTime),
    Column("sort_at", UTCDateTime, nullable=False),  # started_at, else first_event_at
    Column("month", String(7), nullable=False),  # "YYYY-MM" of sort_at
    Column("month_position", Integer),  # order in which completed calls were rated into the month
    Column("updated_at", UTCDateTime, nullable=False),
    Column("stale_at", UTCDateTime),  # still active long after its last event, and not reconciled
    Column("reconciled_at", UTCDateTime),  # when reconciliation last asked about it and left it active
    Column("terminated_reason", String(32)),  # set when spend control decided to end it
    Index("ix_call_usage_user_sort", "user_id", "sort_at", "id"),
    Index("ix_call_usage_user_status_sort", "user_id", "status", "sort_at", "id"),
    Index("ix_call_usage_agent_sort", "agent_id", "sort_at", "id"),
    Index("ix_call_usage_user_month_position", "user_id", "month", "month_position"),
    # Only the few active calls: what reconciliation scans for.
    Index(
        "ix_call_usage_active_updated",
        "updated_at",
        postgresql_where=text("status = 'active'"),
        sqlite_where=text("status = 'active'"),
    ),
)

monthly_usage = Table(
    "monthly_usage",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("month", String(7), primary_key=True),
    Column("total_calls", Integer, nullable=False),
    Column("total_seconds", BigInteger, nullable=False),
    Column("billable_seconds", BigInteger, nullable=False),
    Column("usage_charge_usd", Money, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Prepaid credits (billing/credits.py): what the month cost before the customer's first grant
    # (NULL: postpaid when last changed), what it has charged to the balance since, and how much of
    # that an invoice has applied credit to.
    Column("credit_base_usd", Money),
    Column("drawn_usd", Money, nullable=False, server_default=text("0")),
    Column("invoiced_drawn_usd", Money, nullable=False, server_default=text("0")),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("call_sid", String(64), nullable=False),
    Column("sequence_number", Integer, nullable=False),  # -1 when Twilio sent none
    Column("call_status", String(16), nullable=False),
    Column("event_at", UTCDateTime, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    Column("user_id", BigInteger),  # NULL: matched no agent
    Column("agent_id", BigInteger),
    Column("payload", Text, nullable=False),  # the form as Twilio sent it, JSON
    UniqueConstraint("call_sid", "sequence_number", "call_status", name="uq_webhook_events_dedupe"),
    Index("ix_webhook_events_user_id", "user_id", "id"),
)

plans = Table(
    "plans",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("rate_per_minute", Money),
    Column("tiers", Text),  # JSON [{"up_to_minutes": 500 | null, "rate_per_minute": "0.06"}]
    Column("monthly_fee_usd", Money),
    Column("included_minutes", Integer),
    Column("overage_rate_per_minute", Money),
    Column("billing_increment_seconds", Integer, nullable=False, default=1),
    Column("minimum_billable_seconds", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    # JSON [{"meter": "llm_tokens", "unit_size": "1000", "rate_per_unit": "0.002"}]
    Column("meter_rates", Text, nullable=False, server_default=text("'[]'")),
)

plan_assignments = Table(
    "plan_assignments",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("from_month", String(7), primary_key=True),
    Column("plan_id", BigInteger, ForeignKey("plans.id")),  # NULL: the default plan
    Column("assigned_at", UTCDateTime, nullable=False),
)

# A finalized invoice is immutable: its lines, and the usage it billed (so later changes to that month,
# from late events or a re-rating, are billed as adjustments on a later invoice).
invoices = Table(
    "invoices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False),
    Column("month", String(7), nullable=False),
    Column("number", String(32), nullable=False, unique=True),
    Column("plan_id", BigInteger),
    Column("plan_name", String(200), nullable=False),
    Column("billed_calls", Integer, nullable=False),
    Column("billed_seconds", BigInteger, nullable=False),
    Column("billed_billable_seconds", BigInteger, nullable=False),
    Column("billed_usage_charge_usd", Money, nullable=False),
    Column("total_usd", Money, nullable=False),
    Column("finalized_at", UTCDateTime, nullable=False),
    Column("stripe_invoice_id", String(64)),
    Column("credits_applied_usd", Money, nullable=False, server_default=text("0")),
    UniqueConstraint("user_id", "month", name="uq_invoices_user_month"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", BigInteger, ForeignKey("invoices.id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("description", String(300), nullable=False),
    Column("quantity", Quantity, nullable=False),
    Column("unit_price_usd", Money, nullable=False),
    Column("amount_usd", Money, nullable=False),
)

# What an invoice billed for an earlier, already invoiced month: the difference between that month's
# charge now (fixed fee and usage) and what its invoice and earlier adjustments billed, and the plan
# it was billed by then (plan_id NULL: the default plan; plan_name NULL: not recorded, before 0004).
invoice_adjustments = Table(
    "invoice_adjustments",
    metadata,
    Column("invoice_id", BigInteger, ForeignKey("invoices.id"), primary_key=True),
    Column("for_month", String(7), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("calls", Integer, nullable=False),
    Column("seconds", BigInteger, nullable=False),
    Column("billable_seconds", BigInteger, nullable=False),
    Column("amount_usd", Money, nullable=False),
    Column("plan_id", BigInteger),
    Column("plan_name", String(200)),
    Index("ix_invoice_adjustments_user_month", "user_id", "for_month"),
)

stripe_customers = Table(
    "stripe_customers",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("customer_id", String(64), nullable=False),
)


# One row per customer (a user who is billed), made when they are first seen. `timezones` is the
# billing calendar: JSON [["0001-01", "UTC"], ["2027-01", "America/New_York"]], oldest first.
customers = Table(
    "customers",
    metadata,
    Column("user_id", BigInteger, primary_key=True),
    Column("timezones", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("balance_usd", Money),  # NULL until the first credit grant (postpaid); grants - charges
    Column("monthly_spend_cap_usd", Money),  # the limits: NULL is no limit
    Column("max_concurrent_calls", Integer),
    Column("enforce", Boolean, nullable=False, server_default=false()),
    Column("low_balance_usd", Money),
    Column("exhausted", Boolean, nullable=False, server_default=false()),  # balance.exhausted sent
    Column("cap_reached_month", String(7)),  # the last month spend_cap.reached was sent for
)

# Append-only: every grant and every charge to a prepaid balance, with the balance after it.
credit_ledger = Table(
    "credit_ledger",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),  # billing.credits.LedgerKind
    Column("amount_usd", Money, nullable=False),  # a grant positive, a charge negative
    Column("balance_after_usd", Money, nullable=False),
    Column("month", String(7)),  # the month a charge is for
    Column("call_id", BigInteger),  # the call a charge is for
    Column("idempotency_key", String(200)),  # a grant's
    Column("description", String(500)),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("user_id", "idempotency_key", name="uq_credit_ledger_grant_key"),
    Index("ix_credit_ledger_user_id", "user_id", "id"),
)

# A slot held for a call about to start: released by the call's first callback, or it expires.
call_authorizations = Table(
    "call_authorizations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("agent_id", BigInteger, nullable=False),
    Column("call_sid", String(64)),  # known when the voice gate made it
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("released_at", UTCDateTime),
    Index(
        "ix_call_authorizations_held",
        "user_id",
        "expires_at",
        postgresql_where=text("released_at IS NULL"),
        sqlite_where=text("released_at IS NULL"),
    ),
    Index("ix_call_authorizations_call_sid", "call_sid"),
)

# A call that spend control decided to end, and the hang-up request to Twilio until it is sent.
call_terminations = Table(
    "call_terminations",
    metadata,
    Column("call_id", BigInteger, ForeignKey("call_usage.id"), primary_key=True),
    Column("user_id", BigInteger, nullable=False),
    Column("call_sid", String(64), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("last_error", Text),
    Index(
        "ix_call_terminations_due",
        "next_attempt_at",
        postgresql_where=text("sent_at IS NULL"),
        sqlite_where=text("sent_at IS NULL"),
    ),
)
