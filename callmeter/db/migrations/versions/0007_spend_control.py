"""spend control: a credit ledger, balances and limits on customers, call authorizations, call
terminations, agents' voice URL; every existing customer stays postpaid with no limits

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import callmeter.db.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Money = callmeter.db.types.Money
Time = callmeter.db.types.UTCDateTime
BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
ZERO = sa.text("0")


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.add_column(sa.Column("balance_usd", Money(), nullable=True))
        batch_op.add_column(sa.Column("monthly_spend_cap_usd", Money(), nullable=True))
        batch_op.add_column(sa.Column("max_concurrent_calls", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("enforce", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("low_balance_usd", Money(), nullable=True))
    with op.batch_alter_table("monthly_usage") as batch_op:
        batch_op.add_column(sa.Column("credit_base_usd", Money(), nullable=True))
        batch_op.add_column(sa.Column("drawn_usd", Money(), nullable=False, server_default=ZERO))
        batch_op.add_column(sa.Column("invoiced_drawn_usd", Money(), nullable=False, server_default=ZERO))
    with op.batch_alter_table("invoices") as batch_op:
        batch_op.add_column(sa.Column("credits_applied_usd", Money(), nullable=False, server_default=ZERO))
    with op.batch_alter_table("agents") as batch_op:
        batch_op.add_column(sa.Column("voice_url", sa.String(2000), nullable=True))
    with op.batch_alter_table("call_usage") as batch_op:
        batch_op.add_column(sa.Column("terminated_reason", sa.String(32), nullable=True))
    op.create_table(
        "credit_ledger",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_usd", Money(), nullable=False),
        sa.Column("balance_after_usd", Money(), nullable=False),
        sa.Column("month", sa.String(7), nullable=True),
        sa.Column("call_id", sa.BigInteger(), nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("description", sa.String(500), nullable=True),
        sa.Column("created_at", Time(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_credit_ledger_grant_key"),
    )
    op.create_index("ix_credit_ledger_user_id", "credit_ledger", ["user_id", "id"])
    op.create_table(
        "call_authorizations",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("agent_id", sa.BigInteger(), nullable=False),
        sa.Column("call_sid", sa.String(64), nullable=True),
        sa.Column("created_at", Time(timezone=True), nullable=False),
        sa.Column("expires_at", Time(timezone=True), nullable=False),
        sa.Column("released_at", Time(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_call_authorizations_held",
        "call_authorizations",
        ["user_id", "expires_at"],
        postgresql_where=sa.text("released_at IS NULL"),
        sqlite_where=sa.text("released_at IS NULL"),
    )
    op.create_index("ix_call_authorizations_call_sid", "call_authorizations", ["call_sid"])
    op.create_table(
        "call_terminations",
        sa.Column("call_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("call_sid", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("decided_at", Time(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", Time(timezone=True), nullable=True),
        sa.Column("sent_at", Time(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["call_usage.id"]),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_index(
        "ix_call_terminations_due",
        "call_terminations",
        ["next_attempt_at"],
        postgresql_where=sa.text("sent_at IS NULL"),
        sqlite_where=sa.text("sent_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("call_terminations")
    op.drop_table("call_authorizations")
    op.drop_table("credit_ledger")
    with op.batch_alter_table("call_usage") as batch_op:
        batch_op.drop_column("terminated_reason")
    with op.batch_alter_table("agents") as batch_op:
        batch_op.drop_column("voice_url")
    with op.batch_alter_table("invoices") as batch_op:
        batch_op.drop_column("credits_applied_usd")
    with op.batch_alter_table("monthly_usage") as batch_op:
        for column in ("invoiced_drawn_usd", "drawn_usd", "credit_base_usd"):
            batch_op.drop_column(column)
    with op.batch_alter_table("customers") as batch_op:
        for column in (
            "low_balance_usd",
            "enforce",
            "max_concurrent_calls",
            "monthly_spend_cap_usd",
            "balance_usd",
        ):
            batch_op.drop_column(column)
