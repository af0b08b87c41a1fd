"""What spend control and usage alerts tell the operator's systems, written to the outbox in the
transaction that crossed the line (db/outbox.py; nothing is written when no endpoint listens):

- `balance.low` when a charge takes the balance from at or above `lowBalanceUsd` to below it;
- `balance.exhausted` once each time the available balance falls to 0 (a charge, or the periodic
  pass that counts the running cost of calls in progress); an available balance above 0 again (a
  grant, a refund) re-arms the event;
- `spend_cap.reached` once a month, when the month's spend (running costs included) reaches the cap;
- `usage.threshold_reached` once a month per alert, when the month's value first reaches it.

"Once a month" is kept as the last month sent for, and never sent for an earlier one: a call of the
month before, completing after the new month's event, does not send the old month's again.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY

from callmeter.billing.alerts import AlertMetric, reached
from callmeter.billing.plans import Plan
from callmeter.billing.usage import MonthSummary
from callmeter.db import customers, outbox
from callmeter.db.connection import Connection
from callmeter.db.prepared import Prepared
from callmeter.db.scope import batch_scope
from callmeter.db.spend import spend_state
from callmeter.db.types import to_decimal
from callmeter.db.webhook_tables import usage_alerts
from callmeter.months import Month
from callmeter.notifications import EventType, usage_object
from callmeter.rows import CustomerRow


async def _balances(
    conn: Connection, customer: CustomerRow, default_plan: Plan, now: datetime, completing_call_id: int | None
) -> dict[str, Any]:
    state = await spend_state(
        conn, default_plan=default_plan, customer=customer, now=now, completing_call_id=completing_call_id
    )
    return {"balance_usd": customer.balance_usd, "available_usd": state.available_usd}


async def balance_changed(
    conn: Connection,
    *,
    customer: CustomerRow,
    before: Decimal,
    default_plan: Plan,
    now: datetime,
    completing_call_id: int | None = None,
) -> CustomerRow:
    """After a charge or a grant moved `customer`'s balance from `before` (for a call completing in
    this transaction: `completing_call_id`); the customer after."""
    after = customer.balance_usd
    if after is None:
        return customer
    low = customer.limits.low_balance_usd
    user_id = customer.user_id

    async def data() -> dict[str, Any]:
        return await _balances(conn, customer, default_plan, now, completing_call_id)

    if low is not None and before >= low > after:
        await outbox.enqueue(conn, type=EventType.BALANCE_LOW, user_id=user_id, data=data, now=now)
    if after <= 0 and not customer.exhausted:
        await outbox.enqueue(conn, type=EventType.BALANCE_EXHAUSTED, user_id=user_id, data=data, now=now)
        return await _flags(conn, customer, exhausted=True)
    if after > 0 and customer.exhausted and (await data())["available_usd"] > 0:
        return await _flags(conn, customer, exhausted=False)  # refilled: re-armed
    return customer


async def available_checked(
    conn: Connection, *, customer: CustomerRow, available_usd: Decimal | None, now: datetime
) -> CustomerRow:
    """The periodic pass: the available balance, running costs counted, fell to 0 (or, refilled,
    is above 0 again: re-armed)."""
    if available_usd is None:
        return customer
    if available_usd > 0:
        return await _flags(conn, customer, exhausted=False) if customer.exhausted else customer
    if customer.exhausted:
        return customer
    data = {"balance_usd": customer.balance_usd, "available_usd": available_usd}
    await outbox.enqueue(conn, type=EventType.BALANCE_EXHAUSTED, user_id=customer.user_id, data=data, now=now)
    return await _flags(conn, customer, exhausted=True)


async def spend_checked(
    conn: Connection, *, customer: CustomerRow, summary: MonthSummary, spend_usd: Decimal, now: datetime
) -> CustomerRow:
    """The month's spend (running costs included) against the cap: `spend_cap.reached` once a month."""
    cap = customer.limits.monthly_spend_cap_usd
    month = str(summary.month)
    if cap is None or spend_usd < cap or customer.cap_reached_sent(month):
        return customer
    data = {"month": {**usage_object(summary), "spend_usd": spend_usd}, "cap_usd": cap}
    await outbox.enqueue(conn, type=EventType.SPEND_CAP_REACHED, user_id=customer.user_id, data=data, now=now)
    return await _flags(conn, customer, cap_reached_month=month)


async def _flags(conn: Connection, customer: CustomerRow, **changes: Any) -> CustomerRow:
    changed = replace(customer, **changes)
    await customers.save_flags(
        conn,
        user_id=customer.user_id,
        exhausted=changed.exhausted,
        cap_reached_month=changed.cap_reached_month,
    )
    return changed


# Every completed call asks: statements compiled once (db/prepared.py).
_ALERTS_DUE = Prepared(
    select(usage_alerts).where(
        usage_alerts.c.user_id == bindparam("user_id"),
        # "YYYY-MM" sorts by time: never again for a month the alert has moved past
        or_(
            usage_alerts.c.last_fired_month.is_(None),
            usage_alerts.c.last_fired_month < bindparam("month"),
        ),
    )
)
_WITH_ALERTS = Prepared(
    select(usage_alerts.c.user_id)
    .where(usage_alerts.c.user_id == func.any(bindparam("user_ids", type_=ARRAY(BigInteger))))
    .distinct()
)


async def look_up_alerts(conn: Connection, *, user_ids: set[int]) -> None:
    """For a batch of callbacks (PostgreSQL): which of these users have usage alerts at all, in one
    statement; `alerts_checked` then asks nothing for the others."""
    scope = batch_scope()
    if scope is None or not user_ids:
        return
    rows = await _WITH_ALERTS.fetch_all(conn, user_ids=sorted(user_ids))
    scope.alerts_looked_up.update(user_ids)
    scope.with_alerts.update(row["user_id"] for row in rows)


_ALERT_FIRED = Prepared(
    usage_alerts.update().where(usage_alerts.c.id == bindparam("alert_id")),
    columns=("last_fired_month",),
)


async def alerts_checked(
    conn: Connection,
    *,
    user_id: int,
    month: Month,
    summary: MonthSummary,
    billable_seconds: int,
    now: datetime,
) -> None:
    """Fire each alert of the user the month has reached and that has not fired for it yet."""
    scope = batch_scope()
    if scope is not None and scope.has_no_alerts(user_id):
        return
    rows = await _ALERTS_DUE.fetch_all(conn, user_id=user_id, month=str(month))
    for row in rows:
        metric, threshold = AlertMetric(row["metric"]), to_decimal(row["threshold"])
        if not reached(metric, threshold, summary, billable_seconds):
            continue
        await _ALERT_FIRED.execute(conn, alert_id=row["id"], last_fired_month=str(month))
        alert = {"id": str(row["id"]), "metric": str(metric), "threshold": threshold, "name": row["name"]}
        data = {"alert": alert, "month": usage_object(summary)}
        await outbox.enqueue(
            conn, type=EventType.USAGE_THRESHOLD_REACHED, user_id=user_id, data=data, now=now
        )
