"""What a customer may spend now, read from the database: their open months (stored totals and calls
in progress) and the slots held, for the rules of billing/allowance.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from callmeter.billing.allowance import Allowance, OpenMonth, available, decide
from callmeter.billing.plans import Plan, plan_in_force
from callmeter.db import authorizations, calls, plans, usage
from callmeter.db.connection import Connection
from callmeter.months import Month
from callmeter.rows import CallRow, CustomerRow


@dataclass(frozen=True)
class SpendState:
    customer: CustomerRow
    months: dict[Month, OpenMonth]  # the current month and every month with a call in progress
    current: Month
    active_calls: int  # calls not in a final status (ringing too) and slots held for calls to come
    calls: list[CallRow]  # the calls in progress

    def allowance(self) -> Allowance:
        return decide(
            limits=self.customer.limits,
            balance=self.customer.balance_usd,
            months=self.months,
            current=self.current,
            active_calls=self.active_calls,
        )

    @property
    def available_usd(self) -> Decimal | None:
        return available(self.customer.balance_usd, list(self.months.values()))


def elapsed_seconds(call: CallRow, now: datetime) -> int:
    """Seconds a call in progress has been answered (0 while it rings)."""
    if call.started_at is None:
        return 0
    return max(0, int((now - call.started_at).total_seconds()))


async def spend_state(
    conn: Connection,
    *,
    default_plan: Plan,
    customer: CustomerRow,
    now: datetime,
    completing_call_id: int | None = None,
) -> SpendState:
    """`completing_call_id`: a call this transaction is counting as completed (not running any more)."""
    user_id = customer.user_id
    current = customer.calendar.current(now)
    # Slots first, then calls: a call's first callback releases its slot in the transaction that
    # records the call, so read in this order it is counted once or twice (safe), never not at all.
    held = await authorizations.held_slots(conn, user_id=user_id, now=now)
    active = await calls.list_active_calls(conn, user_id=user_id, answered=False)
    active = [call for call in active if call.id != completing_call_id]
    schedule = await plans.plan_schedule(conn, user_id=user_id)
    running: dict[Month, list[int]] = {}
    for call in active:
        running.setdefault(call.month, []).append(elapsed_seconds(call, now))
    months = {}
    for month in {current, *running}:
        stored = await usage.fetch_stored_month(conn, user_id=user_id, month=month)
        months[month] = OpenMonth(
            month=month,
            plan=plan_in_force(schedule, month, default_plan),
            billable_seconds=stored.billable_seconds if stored else 0,
            usage_charge_usd=stored.usage_charge_usd if stored else Decimal("0.00"),
            recorded=stored is not None,
            running=tuple(running.get(month, ())),
        )
    return SpendState(customer, months, current, len(active) + held, active)
