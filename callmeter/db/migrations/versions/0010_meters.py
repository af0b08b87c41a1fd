"""meters: usage events, each meter's month, plans' meter rates; invoice line quantities get room

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import callmeter.db.types

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "usage_events",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("call_sid", sa.String(64), nullable=True),
        sa.Column("meter", sa.String(64), nullable=False),
        sa.Column("quantity", callmeter.db.types.Quantity(), nullable=False),
        sa.Column("occurred_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("call_id", sa.BigInteger(), nullable=True),
        sa.Column("month", sa.String(7), nullable=True),
        sa.Column("cost_usd", callmeter.db.types.Money(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_usage_events_user_key", "usage_events", ["user_id", "idempotency_key"], unique=True)
    op.create_index("ix_usage_events_call", "usage_events", ["call_id"])
    op.create_index("ix_usage_events_user_month_meter", "usage_events", ["user_id", "month", "meter", "id"])
    op.create_index(
        "ix_usage_events_waiting",
        "usage_events",
        ["user_id", "call_sid"],
        postgresql_where=sa.text("month IS NULL"),
        sqlite_where=sa.text("month IS NULL"),
    )
    op.create_table(
        "meter_usage",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("meter", sa.String(64), nullable=False),
        sa.Column("quantity", callmeter.db.types.Quantity(), nullable=False),
        sa.Column("charge_usd", callmeter.db.types.Money(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("updated_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "month", "meter"),
    )
    with op.batch_alter_table("plans") as batch_op:
        batch_op.add_column(
            sa.Column("meter_rates", sa.Text(), nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("invoice_lines") as batch_op:
        batch_op.alter_column(
            "quantity",
            type_=callmeter.db.types.Quantity(),
            existing_type=callmeter.db.types.Money(),
            existing_nullable=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("invoice_lines") as batch_op:
        batch_op.alter_column(
            "quantity",
            type_=callmeter.db.types.Money(),
            existing_type=callmeter.db.types.Quantity(),
            existing_nullable=False,
        )
    with op.batch_alter_table("plans") as batch_op:
        batch_op.drop_column("meter_rates")
    op.drop_table("meter_usage")
    op.drop_table("usage_events")
