"""initial schema

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import callmeter.db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agents_user_id"), ["user_id"], unique=False)

    op.create_table(
        "monthly_usage",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("total_calls", sa.Integer(), nullable=False),
        sa.Column("total_seconds", sa.BigInteger(), nullable=False),
        sa.Column("billable_seconds", sa.BigInteger(), nullable=False),
        sa.Column("usage_charge_usd", callmeter.db.types.Money(precision=18, scale=6), nullable=False),
        sa.Column("updated_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "month"),
    )
    op.create_table(
        "plans",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("rate_per_minute", callmeter.db.types.Money(precision=18, scale=6), nullable=True),
        sa.Column("tiers", sa.Text(), nullable=True),
        sa.Column("monthly_fee_usd", callmeter.db.types.Money(precision=18, scale=6), nullable=True),
        sa.Column("included_minutes", sa.Integer(), nullable=True),
        sa.Column(
            "overage_rate_per_minute",
            callmeter.db.types.Money(precision=18, scale=6),
            nullable=True,
        ),
        sa.Column("billing_increment_seconds", sa.Integer(), nullable=False),
        sa.Column("minimum_billable_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "webhook_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("sequence_number", sa.Integer(), nullable=False),
        sa.Column("call_status", sa.String(length=16), nullable=False),
        sa.Column("event_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_sid", "sequence_number", "call_status", name="uq_webhook_events_dedupe"),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_events_user_id", ["user_id", "id"], unique=False)

    op.create_table(
        "agent_numbers",
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
        ),
        sa.PrimaryKeyConstraint("number"),
    )
    with op.batch_alter_table("agent_numbers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_numbers_agent_id"), ["agent_id"], unique=False)

    op.create_table(
        "call_usage",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=True),
        sa.Column("call_from", sa.String(length=64), nullable=True),
        sa.Column("call_to", sa.String(length=64), nullable=True),
        sa.Column("direction", sa.String(length=32), nullable=True),
        sa.Column("account_sid", sa.String(length=64), nullable=True),
        sa.Column("twilio_status", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=False),
        sa.Column("billable_seconds", sa.Integer(), nullable=False),
        sa.Column("cost_usd", callmeter.db.types.Money(precision=18, scale=6), nullable=False),
        sa.Column("first_event_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("sort_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("month_position", sa.Integer(), nullable=True),
        sa.Column("updated_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_sid"),
    )
    with op.batch_alter_table("call_usage", schema=None) as batch_op:
        batch_op.create_index("ix_call_usage_agent_sort", ["agent_id", "sort_at", "id"], unique=False)
        batch_op.create_index(
            "ix_call_usage_user_month_position",
            ["user_id", "month", "month_position"],
            unique=False,
        )
        batch_op.create_index("ix_call_usage_user_sort", ["user_id", "sort_at", "id"], unique=False)
        batch_op.create_index(
            "ix_call_usage_user_status_sort", ["user_id", "status", "sort_at", "id"], unique=False
        )

    op.create_table(
        "plan_assignments",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("from_month", sa.String(length=7), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("assigned_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
        ),
        sa.PrimaryKeyConstraint("user_id", "from_month"),
    )


def downgrade() -> None:
    op.drop_table("plan_assignments")
    with op.batch_alter_table("call_usage", schema=None) as batch_op:
        batch_op.drop_index("ix_call_usage_user_status_sort")
        batch_op.drop_index("ix_call_usage_user_sort")
        batch_op.drop_index("ix_call_usage_user_month_position")
        batch_op.drop_index("ix_call_usage_agent_sort")

    op.drop_table("call_usage")
    with op.batch_alter_table("agent_numbers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_numbers_agent_id"))

    op.drop_table("agent_numbers")
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_events_user_id")

    op.drop_table("webhook_events")
    op.drop_table("plans")
    op.drop_table("monthly_usage")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agents_user_id"))

    op.drop_table("agents")
