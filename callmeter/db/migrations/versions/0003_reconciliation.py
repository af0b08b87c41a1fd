"""reconciliation: stale marker and an index of active calls

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import callmeter.db.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_usage") as batch_op:
        batch_op.add_column(
            sa.Column("stale_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_call_usage_active_updated",
        "call_usage",
        ["updated_at"],
        postgresql_where=sa.text("status = 'active'"),
        sqlite_where=sa.text("status = 'active'"),
    )


def downgrade() -> None:
    op.drop_index("ix_call_usage_active_updated", table_name="call_usage")
    with op.batch_alter_table("call_usage") as batch_op:
        batch_op.drop_column("stale_at")
