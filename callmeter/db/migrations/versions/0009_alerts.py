"""usage alerts, and what spend control has told the operator (balance exhausted, cap reached)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import callmeter.db.types

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "usage_alerts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("metric", sa.String(32), nullable=False),
        sa.Column("threshold", callmeter.db.types.Money(), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("last_fired_month", sa.String(7), nullable=True),
        sa.Column("created_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_usage_alerts_user_id", "usage_alerts", ["user_id"])
    with op.batch_alter_table("customers") as batch_op:
        batch_op.add_column(sa.Column("exhausted", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("cap_reached_month", sa.String(7), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch_op:
        batch_op.drop_column("cap_reached_month")
        batch_op.drop_column("exhausted")
    op.drop_table("usage_alerts")
