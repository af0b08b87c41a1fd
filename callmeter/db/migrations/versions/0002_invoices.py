"""invoices

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import callmeter.db.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=True),
        sa.Column("plan_name", sa.String(length=200), nullable=False),
        sa.Column("billed_calls", sa.Integer(), nullable=False),
        sa.Column("billed_seconds", sa.BigInteger(), nullable=False),
        sa.Column("billed_billable_seconds", sa.BigInteger(), nullable=False),
        sa.Column("billed_usage_charge_usd", callmeter.db.types.Money(precision=18, scale=6), nullable=False),
        sa.Column("total_usd", callmeter.db.types.Money(precision=18, scale=6), nullable=False),
        sa.Column("finalized_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stripe_invoice_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
        sa.UniqueConstraint("user_id", "month", name="uq_invoices_user_month"),
    )
    op.create_table(
        "stripe_customers",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "invoice_adjustments",
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("for_month", sa.String(length=7), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.BigInteger(), nullable=False),
        sa.Column("billable_seconds", sa.BigInteger(), nullable=False),
        sa.Column("amount_usd", callmeter.db.types.Money(precision=18, scale=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
        ),
        sa.PrimaryKeyConstraint("invoice_id", "for_month"),
    )
    with op.batch_alter_table("invoice_adjustments", schema=None) as batch_op:
        batch_op.create_index("ix_invoice_adjustments_user_month", ["user_id", "for_month"], unique=False)

    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("quantity", callmeter.db.types.Money(precision=18, scale=6), nullable=False),
        sa.Column("unit_price_usd", callmeter.db.types.Money(precision=18, scale=6), nullable=False),
        sa.Column("amount_usd", callmeter.db.types.Money(precision=18, scale=6), nullable=False),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
        ),
        sa.PrimaryKeyConstraint("invoice_id", "position"),
    )


def downgrade() -> None:
    op.drop_table("invoice_lines")
    with op.batch_alter_table("invoice_adjustments", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_adjustments_user_month")

    op.drop_table("invoice_adjustments")
    op.drop_table("stripe_customers")
    op.drop_table("invoices")
