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
    op.create_table(
        "customers",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("timezones", sa.Text(), nullable=False),
        sa.Column("created_at", callmeter.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    # One statement, however many users: nothing is read into this process.
    op.get_bind().execute(
        sa.text(
            "INSERT INTO customers (user_id, timezones, created_at) "
            f"SELECT user_id, :zones, :now FROM ({KNOWN_USERS}) AS known"
        ).bindparams(sa.bindparam("now", type_=callmeter.db.types.UTCDateTime())),
        {"zones": UTC_ONLY, "now": datetime.now(UTC)},
    )


def downgrade() -> None:
    op.drop_table("customers")
