"""What a customer may spend now, read from the database: their open months (stored totals and calls
in progress) and the slots held, for the rules of billing/allowance.py; and the call gate's reads,
two statements a decision (bench/README.md, "The call gate")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, select, true

from callmeter.billing.allowance import Allowance, OpenMonth, available, decide
from callmeter.billing.plans import Plan, plan_in_force
from callmeter.call_lifecycle import CallStatus
from callmeter.db import authorizations, calls, plans
from callmeter.db.agents import AgentOwner
from callmeter.db.connection import Connection
from callmeter.db.customers import customer_row
from callmeter.db.prepared import Prepared
from callmeter.db.tables import agents, customers, monthly_usage, plan_assignments
from callmeter.db.tables import plans as plan_rows
from callmeter.db.types import to_decimal
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


# The gate's first statement: the agent's owner with their customer row locked until commit (so
# deciding and taking a slot do not interleave), and their plan schedule, one row per assignment.
# No row: no such agent, or a customer never seen.
_LOCK_OWNER = Prepared(
    select(agents.c.id.label("agent_id"), agents.c.voice_url, customers, *plans.SCHEDULE_COLUMNS)
    .select_from(
        agents.join(customers, customers.c.user_id == agents.c.user_id)
        .outerjoin(plan_assignments, plan_assignments.c.user_id == customers.c.user_id)
        .outerjoin(plan_rows, plan_rows.c.id == plan_assignments.c.plan_id)
    )
    .where(agents.c.id == bindparam("agent_id"))
    .order_by(plan_assignments.c.from_month)
    .with_for_update(of=customers)
)


@dataclass(frozen=True)
class LockedOwner:
    owner: AgentOwner
    customer: CustomerRow
    schedule: list[tuple[Month, Plan | None]]


async def lock_agent_customer(conn: Connection, *, agent_id: int) -> LockedOwner | None:
    rows = await _LOCK_OWNER.fetch_all(conn, agent_id=agent_id)
    if not rows:
        return None
    first = rows[0]
    owner = AgentOwner(first["agent_id"], first["user_id"], first["timezones"], first["voice_url"])
    return LockedOwner(owner, customer_row(first), plans.schedule_from_rows(rows))


# The rest in one statement, read after the lock: the slots held, the current month as stored, and
# each call in progress (ringing ones too) with its month as stored; one row when none is in
# progress. One snapshot, so a first callback (which releases its slot in the transaction that
# records its call) is counted exactly once.
_HELD = authorizations.HELD.subquery("held")
_IN_PROGRESS = calls.active_calls_query(answered=False).subquery("in_progress")
_CURRENT = monthly_usage.alias("current_month")
_CALL_MONTH = monthly_usage.alias("call_month")
_HELD_AND_IN_PROGRESS = Prepared(
    select(
        _HELD.c.held,
        _CURRENT.c.month.label("current_stored"),
        _CURRENT.c.billable_seconds.label("current_billable_seconds"),
        _CURRENT.c.usage_charge_usd.label("current_usage_charge_usd"),
        _IN_PROGRESS,
        _CALL_MONTH.c.month.label("call_month_stored"),
        _CALL_MONTH.c.billable_seconds.label("call_month_billable_seconds"),
        _CALL_MONTH.c.usage_charge_usd.label("call_month_usage_charge_usd"),
    )
    .select_from(
        _HELD.outerjoin(
            _CURRENT,
            and_(_CURRENT.c.user_id == bindparam("user_id"), _CURRENT.c.month == bindparam("month")),
        )
        .outerjoin(_IN_PROGRESS, true())
        .outerjoin(
            _CALL_MONTH,
            and_(
                _CALL_MONTH.c.user_id == _IN_PROGRESS.c.user_id,
                _CALL_MONTH.c.month == _IN_PROGRESS.c.month,
            ),
        )
    )
    .order_by(_IN_PROGRESS.c.sort_at.desc(), _IN_PROGRESS.c.id.desc())
)


@dataclass(frozen=True)
class _Stored:
    billable_seconds: int
    usage_charge_usd: Decimal


def _stored(row: Any, prefix: str) -> _Stored | None:
    if row[f"{prefix}_stored"] is None:
        return None
    return _Stored(row[f"{prefix}_billable_seconds"], to_decimal(row[f"{prefix}_usage_charge_usd"]))


async def spend_state(
    conn: Connection,
    *,
    default_plan: Plan,
    customer: CustomerRow,
    now: datetime,
    completing_call_id: int | None = None,
    schedule: list[tuple[Month, Plan | None]] | None = None,
) -> SpendState:
    """`completing_call_id`: a call this transaction is counting as completed (not running any more);
    `schedule`: the customer's plan schedule if read already (`lock_agent_customer`)."""
    user_id = customer.user_id
    current = customer.calendar.current(now)
    rows = await _HELD_AND_IN_PROGRESS.fetch_all(
        conn, user_id=user_id, month=str(current), now=now, status=CallStatus.ACTIVE
    )
    if schedule is None:
        schedule = await plans.plan_schedule(conn, user_id=user_id)
    stored = {current: _stored(rows[0], "current")}
    active = []
    running: dict[Month, list[int]] = {}
    for row in rows:
        if row["id"] is None or row["id"] == completing_call_id:
            continue
        call = calls.call_row(row)
        active.append(call)
        running.setdefault(call.month, []).append(elapsed_seconds(call, now))
        stored.setdefault(call.month, _stored(row, "call_month"))
    months = {}
    for month, totals in stored.items():
        months[month] = OpenMonth(
            month=month,
            plan=plan_in_force(schedule, month, default_plan),
            billable_seconds=totals.billable_seconds if totals else 0,
            usage_charge_usd=totals.usage_charge_usd if totals else Decimal("0.00"),
            recorded=totals is not None,
            running=tuple(running.get(month, ())),
        )
    return SpendState(customer, months, current, len(active) + int(rows[0]["held"]), active)
