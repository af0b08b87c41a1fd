"""Re-rating a user's months after a plan change: every completed call again, in completion order,
and every usage event (db/meter_billing.py).

Costs telescope within a month (each call's cost is what it added to the month's charge), so a month
is re-rated as a whole, in the order its calls were first rated (`month_position`). The caller holds
the user's billing lock, so no callback rates this user's calls meanwhile.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from callmeter.billing.credits import LedgerKind
from callmeter.billing.plans import Plan, fixed_fee, plan_in_force
from callmeter.billing.rating import rate_month
from callmeter.billing.usage import MonthTotals
from callmeter.call_lifecycle import CallStatus
from callmeter.db import credits, meter_billing
from callmeter.db.connection import Connection
from callmeter.db.customers import fetch_customer
from callmeter.db.plans import plan_schedule
from callmeter.db.tables import call_usage, monthly_usage
from callmeter.db.usage import fetch_month
from callmeter.months import Month


async def rerate_months(
    conn: Connection, *, user_id: int, from_month: Month, default_plan: Plan
) -> list[MonthTotals]:
    """Re-rate every month from `from_month` on that has usage; the months after."""
    months = await conn.fetch_all(
        select(monthly_usage.c.month)
        .where(monthly_usage.c.user_id == user_id, monthly_usage.c.month >= str(from_month))
        .order_by(monthly_usage.c.month)
    )
    schedule = await plan_schedule(conn, user_id=user_id)
    customer = await fetch_customer(conn, user_id=user_id)
    rerated = []
    for record in months:
        month = Month.stored(record["month"])
        plan = plan_in_force(schedule, month, default_plan)
        totals = await _rerate_month(conn, user_id=user_id, month=month, plan=plan)
        rerated.append(totals)
        if customer is not None:
            # A prepaid customer's balance follows the month's new total: a charge or a refund.
            customer = await credits.settle(
                conn,
                customer=customer,
                month=month,
                total_cost_usd=fixed_fee(plan) + totals.usage_charge_usd,
                kind=LedgerKind.ADJUSTMENT,
                default_plan=default_plan,
                description=f"re-rated by {plan.name}",
            )
    return rerated


async def _rerate_month(conn: Connection, *, user_id: int, month: Month, plan: Plan) -> MonthTotals:
    calls = await conn.fetch_all(
        select(call_usage.c.id, call_usage.c.duration_seconds)
        .where(
            call_usage.c.user_id == user_id,
            call_usage.c.month == str(month),
            call_usage.c.status == CallStatus.COMPLETED,
        )
        .order_by(call_usage.c.month_position, call_usage.c.id)
    )
    charges = rate_month(plan, [call["duration_seconds"] for call in calls])
    for call, charge in zip(calls, charges, strict=True):
        await conn.execute(
            call_usage.update()
            .where(call_usage.c.id == call["id"])
            .values(billable_seconds=charge.billable_seconds, cost_usd=charge.cost)
        )
    billable = sum(charge.billable_seconds for charge in charges)
    total = sum((charge.cost for charge in charges), start=Decimal("0.00"))
    total += await meter_billing.rerate_month(conn, user_id=user_id, month=month, plan=plan)
    await conn.execute(
        monthly_usage.update()
        .where(monthly_usage.c.user_id == user_id, monthly_usage.c.month == str(month))
        .values(billable_seconds=billable, usage_charge_usd=total)
    )
    return await fetch_month(conn, user_id=user_id, month=month)
