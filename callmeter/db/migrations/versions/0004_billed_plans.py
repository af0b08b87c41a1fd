"""billed plans: the default plan is assignable, adjustments record the plan they billed by

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL: the default pay-as-you-go plan (PRICE_PER_MINUTE), which is not stored.
    with op.batch_alter_table("plan_assignments") as batch_op:
        batch_op.alter_column("plan_id", existing_type=sa.BigInteger(), nullable=True)
    # plan_name NULL: an adjustment written before this revision, which recorded no plan.
    with op.batch_alter_table("invoice_adjustments") as batch_op:
        batch_op.add_column(sa.Column("plan_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("plan_name", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("invoice_adjustments") as batch_op:
        batch_op.drop_column("plan_name")
        batch_op.drop_column("plan_id")
    # The old schema cannot say "back to the default plan": those assignments are dropped.
    op.execute("DELETE FROM plan_assignments WHERE plan_id IS NULL")
    with op.batch_alter_table("plan_assignments") as batch_op:
        batch_op.alter_column("plan_id", existing_type=sa.BigInteger(), nullable=False)
