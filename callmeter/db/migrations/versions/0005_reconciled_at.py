"""reconciled_at: when reconciliation last asked about a call it could not close

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import callmeter.db.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("call_usage") as batch_op:
        batch_op.add_column(
            sa.Column("reconciled_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("call_usage") as batch_op:
        batch_op.drop_column("reconciled_at")
