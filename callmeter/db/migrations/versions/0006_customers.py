"""customers: one row per billed user, with the billing time zones; every existing one is UTC

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import callmeter.db.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UTC_ONLY = '[["0001-01","UTC"]]'

# Everyone the database already bills or attributes calls to: their months were UTC months.
KNOWN_USERS = """
    SELECT user_id FROM agents
    UNION SELECT user_id FROM call_usage
    UNION SELECT user_id FROM monthly_usage
    UNION SELECT user_id FROM plan_assignments
    UNION SELECT user_id FROM invoices
"""


def upgrade() -> None:
    customers = op.create_table(
        "customers",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("timezones", sa.Text(), nullable=False),
        sa.Column("created_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    known = op.get_bind().execute(sa.text(KNOWN_USERS)).scalars().all()
    now = datetime.now(UTC)
    op.bulk_insert(
        customers,
        [{"user_id": user_id, "timezones": UTC_ONLY, "created_at": now} for user_id in sorted(known)],
    )


def downgrade() -> None:
    op.drop_table("customers")
