"""Counting a completed call into its month: its cost, the month's charge, and what it draws from a
prepaid balance, in the recording transaction, under the user's billing lock.

The call's cost is what it added to the month's rounded charge (billing/rating.py). For a prepaid
customer the change of the month's total cost (its fixed fee too, with the month's first call) is
charged to the balance in the same transaction (billing/credits.py), so the balance is always
exactly grants less charges, however many callbacks race.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from callmeter.billing.credits import LedgerKind
from callmeter.billing.plans import Plan, billable_seconds, fixed_fee
from callmeter.billing.rating import CallCharge, rate_call
from callmeter.billing.usage import MonthTotals, summarize
from callmeter.db import credits, customers, plans, usage, watch
from callmeter.db.connection import Connection
from callmeter.db.locks import lock_user_billing
from callmeter.months import Month


async def rate_into_month(
    conn: Connection, *, user_id: int, call_id: int, month: Month, duration: int, default_plan: Plan
) -> tuple[CallCharge, MonthTotals]:
    """Add a completed call to its month: its charge, and the month after it."""
    await lock_user_billing(conn, user_id=user_id)
    customer = await customers.fetch_customer(conn, user_id=user_id)
    assert customer is not None, "the recording path stores the customer first"
    balance = customer.balance_usd
    plan = await plans.plan_for_month(conn, user_id=user_id, month=month) or default_plan
    billable = billable_seconds(plan, duration)
    totals, draw = await usage.add_completed_call(
        conn,
        user_id=user_id,
        month=month,
        seconds=duration,
        billable_seconds=billable,
        credit_base_usd=None if balance is None else Decimal(0),
    )
    charge = rate_call(
        plan, month_billable_before=totals.billable_seconds - billable, duration_seconds=duration
    )
    # The stored charge grows by exactly each call's cost, so the costs always add up to it.
    totals = replace(totals, usage_charge_usd=totals.usage_charge_usd + charge.cost)
    await usage.set_month_charge(conn, user_id=user_id, month=month, usage_charge_usd=totals.usage_charge_usd)
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
