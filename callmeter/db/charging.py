"""Counting a completed call into its month: its cost, the month's charge, and what it draws from a
prepaid balance, in the recording transaction, under the user's billing lock.

The call's cost is what it added to the month's rounded charge (billing/rating.py). For a prepaid
customer the change of the month's total cost (its fixed fee too, with the month's first call) is
charged to the balance in the same transaction (billing/credits.py), so the balance is always
exactly grants less charges, however many callbacks race.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, select

from callmeter.billing.credits import LedgerKind, MonthDraw
from callmeter.billing.plans import Plan, billable_seconds, fixed_fee
from callmeter.billing.rating import CallCharge, rate_call
from callmeter.billing.usage import MonthTotals, summarize
from callmeter.db import credits, customers, plans, usage, watch
from callmeter.db.connection import Connection
from callmeter.db.locks import lock_user_billing
from callmeter.db.prepared import Prepared
from callmeter.db.tables import customers as customers_table
from callmeter.db.tables import monthly_usage, plan_assignments
from callmeter.db.tables import plans as plans_table
from callmeter.months import Month

# Everything rating a completed call reads, in one statement: the customer, the plan assigned to
# the month (NULL: the default plan) and the month as counted so far (NULL: nothing yet).
_ASSIGNED_PLAN = (
    select(plan_assignments.c.plan_id)
    .where(
        plan_assignments.c.user_id == customers_table.c.user_id,
        plan_assignments.c.from_month <= bindparam("month"),
    )
    .order_by(plan_assignments.c.from_month.desc())
    .limit(1)
    .scalar_subquery()
)
_FOR_RATING = Prepared(
    select(
        customers_table,
        *(column.label(f"plan_{column.name}") for column in plans_table.c),
        *(column.label(f"month_{column.name}") for column in monthly_usage.c),
    )
    .select_from(
        customers_table.outerjoin(plans_table, plans_table.c.id == _ASSIGNED_PLAN).outerjoin(
            monthly_usage,
            and_(
                monthly_usage.c.user_id == customers_table.c.user_id,
                monthly_usage.c.month == bindparam("month"),
            ),
        )
    )
    .where(customers_table.c.user_id == bindparam("user_id"))
)


def _part(row: Mapping[str, Any], prefix: str) -> dict[str, Any] | None:
    """The columns of one joined table (None when the join found no row)."""
    part = {key[len(prefix) :]: value for key, value in row.items() if key.startswith(prefix)}
    return part if part[next(iter(part))] is not None else None


async def rate_into_month(
    conn: Connection, *, user_id: int, call_id: int, month: Month, duration: int, default_plan: Plan
) -> tuple[CallCharge, MonthTotals]:
    """Add a completed call to its month: its charge, and the month after it."""
    await lock_user_billing(conn, user_id=user_id)
    row = await _FOR_RATING.fetch_one(conn, user_id=user_id, month=str(month))
    assert row is not None, "the recording path stores the customer first"
    customer = customers.customer_row(row)
    assigned, stored = _part(row, "plan_"), _part(row, "month_")
    plan = plans.plan_from_record(assigned) if assigned else default_plan
    before = usage.month_read(stored, user_id, month)
    base = None if customer.balance_usd is None else Decimal(0)  # a new month's, for a prepaid customer
    draw = usage.month_draw(stored) if stored else MonthDraw(base, Decimal("0.00"))
    billable = billable_seconds(plan, duration)
    charge = rate_call(plan, month_billable_before=before.billable_seconds, duration_seconds=duration)
    # The stored charge grows by exactly each call's cost, so the costs always add up to it.
    totals = replace(
        before,
        total_calls=before.total_calls + 1,
        total_seconds=before.total_seconds + duration,
        billable_seconds=before.billable_seconds + billable,
        usage_charge_usd=before.usage_charge_usd + charge.cost,
    )
    await usage.write_month(conn, totals=totals, credit_base_usd=base)
    customer = await credits.settle(
        conn,
        customer=customer,
        month=month,
        total_cost_usd=fixed_fee(plan) + totals.usage_charge_usd,
        kind=LedgerKind.CALL,
        default_plan=default_plan,
        draw=draw,
        call_id=call_id,
    )
    summary, now = summarize(totals, plan), datetime.now(UTC)
    await watch.spend_checked(
        conn, customer=customer, summary=summary, spend_usd=summary.total_cost_usd, now=now
    )
    await watch.alerts_checked(
        conn, user_id=user_id, month=month, summary=summary, billable_seconds=totals.billable_seconds, now=now
    )
    return charge, totals
