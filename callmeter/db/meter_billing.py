"""Billing usage events into their meters' months, and reading them back.

Billing an event adds it to its meter's month (`meter_usage`), its cost (billing/meters.py) to the
month's usage charge (`monthly_usage.usage_charge_usd` covers minutes and meters), and for a prepaid
customer the change to the balance, with the alerts and balance events that follow; all in the
caller's transaction under the user's billing lock, so the events' costs add up to each meter's
month charge and the month's total, always. A plan change re-rates a month's meters as a whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert

from callmeter.billing.credits import LedgerKind
from callmeter.billing.meters import MeterTotal, check_month_charge, rate_events, rate_of
from callmeter.billing.plans import Plan, fixed_fee
from callmeter.billing.usage import summarize
from callmeter.db import credits, plans, usage, watch
from callmeter.db.connection import Connection
from callmeter.db.customers import fetch_customer
from callmeter.db.meter_tables import meter_usage, usage_events
from callmeter.db.types import to_decimal, to_quantity
from callmeter.months import Month


async def bill(
    conn: Connection,
    *,
    user_id: int,
    items: Sequence[tuple[Month, str, Decimal]],
    default_plan: Plan,
    now: datetime,
) -> list[Decimal]:
    """Bill (month, meter, quantity) items in order, under the caller's billing lock: each item's
    cost. Each meter's month is read and written once, each month's total once."""
    if not items:
        return []
    groups: dict[tuple[Month, str], list[int]] = {}
    for index, (month, meter, _) in enumerate(items):
        groups.setdefault((month, meter), []).append(index)
    stored = {
        (Month.stored(row["month"]), row["meter"]): row
        for row in await conn.fetch_all(
            select(meter_usage).where(
                meter_usage.c.user_id == user_id,
                tuple_(meter_usage.c.month, meter_usage.c.meter).in_(
                    [(str(month), meter) for month, meter in groups]
                ),
            )
        )
    }
    month_plans = {month: await plan_of(conn, user_id, month, default_plan) for month, _ in groups}
    costs: list[Decimal] = [Decimal(0)] * len(items)
    added: dict[Month, Decimal] = {}
    for (month, meter), indexes in groups.items():
        row = stored.get((month, meter))
        before_quantity = to_quantity(row["quantity"]) if row else Decimal(0)
        before_charge = to_decimal(row["charge_usd"]) if row else Decimal("0.00")
        quantities = [items[index][2] for index in indexes]
        found = rate_events(
            rate_of(month_plans[month].meter_rates, meter),
            quantity_before=before_quantity,
            charge_before=before_charge,
            quantities=quantities,
        )
        for index, cost in zip(indexes, found, strict=True):
            costs[index] = cost
        check_month_charge(meter, month, before_charge + sum(found, start=Decimal("0.00")))
        await _save_meter_month(
            conn,
            user_id=user_id,
            month=month,
            meter=meter,
            quantity=before_quantity + sum(quantities, start=Decimal(0)),
            charge=before_charge + sum(found, start=Decimal("0.00")),
            events=(row["events"] if row else 0) + len(indexes),
            now=now,
        )
        added[month] = added.get(month, Decimal("0.00")) + sum(found, start=Decimal("0.00"))
    for month, amount in added.items():
        await add_to_month(
            conn,
            user_id=user_id,
            month=month,
            amount=amount,
            plan=month_plans[month],
            default_plan=default_plan,
        )
    return costs


async def plan_of(conn: Connection, user_id: int, month: Month, default_plan: Plan) -> Plan:
    return await plans.plan_for_month(conn, user_id=user_id, month=month) or default_plan


async def _save_meter_month(
    conn: Connection,
    *,
    user_id: int,
    month: Month,
    meter: str,
    quantity: Decimal,
    charge: Decimal,
    events: int,
    now: datetime,
) -> None:
    values = {"quantity": quantity, "charge_usd": charge, "events": events, "updated_at": now}
    statement = insert(meter_usage).values(user_id=user_id, month=str(month), meter=meter, **values)
    await conn.execute(
        statement.on_conflict_do_update(index_elements=["user_id", "month", "meter"], set_=values)
    )


async def add_to_month(
    conn: Connection, *, user_id: int, month: Month, amount: Decimal, plan: Plan, default_plan: Plan
) -> None:
    """Add `amount` to the month's usage charge, draw it from a prepaid balance, and tell the
    operator of the limits and alerts it crosses."""
    customer = await fetch_customer(conn, user_id=user_id)
    assert customer is not None
    base = None if customer.balance_usd is None else Decimal(0)
    await usage.ensure_month(conn, user_id=user_id, month=month, credit_base_usd=base)
    totals = await usage.fetch_month(conn, user_id=user_id, month=month)
    charge = totals.usage_charge_usd + amount
    await usage.set_month_charge(conn, user_id=user_id, month=month, usage_charge_usd=charge)
    summary = summarize(replace(totals, usage_charge_usd=charge), plan)
    customer = await credits.settle(
        conn,
        customer=customer,
        month=month,
        total_cost_usd=fixed_fee(plan) + charge,
        kind=LedgerKind.METER,
        default_plan=default_plan,
    )
    now = datetime.now(UTC)
    await watch.spend_checked(
        conn, customer=customer, summary=summary, spend_usd=summary.total_cost_usd, now=now
    )
    await watch.alerts_checked(
        conn, user_id=user_id, month=month, summary=summary, billable_seconds=totals.billable_seconds, now=now
    )


async def rerate_month(conn: Connection, *, user_id: int, month: Month, plan: Plan) -> Decimal:
    """Re-rate every billed event of the month by `plan`, meter by meter in the order they were
    billed; the meters' charge for the month after it (the caller adds it to the minutes')."""
    rows = await conn.fetch_all(
        select(usage_events.c.id, usage_events.c.meter, usage_events.c.quantity, usage_events.c.cost_usd)
        .where(usage_events.c.user_id == user_id, usage_events.c.month == str(month))
        .order_by(usage_events.c.meter, usage_events.c.id)
    )
    by_meter: dict[str, list[object]] = {}
    for row in rows:
        by_meter.setdefault(row["meter"], []).append(row)
    total, now = Decimal("0.00"), datetime.now(UTC)
    for meter in (await month_meters(conn, user_id=user_id, months=[month])).get(month, []):
        if meter.meter not in by_meter:  # its events moved to another month with their call
            await _save_meter_month(
                conn,
                user_id=user_id,
                month=month,
                meter=meter.meter,
                quantity=Decimal(0),
                charge=Decimal("0.00"),
                events=0,
                now=now,
            )
    for meter, found in by_meter.items():
        quantities = [to_quantity(row["quantity"]) for row in found]  # type: ignore[index]
        costs = rate_events(
            rate_of(plan.meter_rates, meter),
            quantity_before=Decimal(0),
            charge_before=Decimal("0.00"),
            quantities=quantities,
        )
        for row, cost in zip(found, costs, strict=True):
            if to_decimal(row["cost_usd"]) != cost:  # type: ignore[index]
                await conn.execute(
                    usage_events.update().where(usage_events.c.id == row["id"]).values(cost_usd=cost)  # type: ignore[index]
                )
        charge = sum(costs, start=Decimal("0.00"))
        await _save_meter_month(
            conn,
            user_id=user_id,
            month=month,
            meter=meter,
            quantity=sum(quantities, start=Decimal(0)),
            charge=charge,
            events=len(found),
            now=now,
        )
        total += charge
    return total


async def month_meters(
    conn: Connection, *, user_id: int, months: Sequence[Month]
) -> dict[Month, list[MeterTotal]]:
    """Each month's meters, by name (months without any are left out)."""
    if not months:
        return {}
    rows = await conn.fetch_all(
        select(meter_usage).where(
            meter_usage.c.user_id == user_id,
            meter_usage.c.month.in_([str(month) for month in months]),
            meter_usage.c.events > 0,
        )
    )
    found: dict[Month, list[MeterTotal]] = {}
    # By name in Python: the databases' collations order "_" differently.
    for row in sorted(rows, key=lambda row: (row["month"], row["meter"])):
        found.setdefault(Month.stored(row["month"]), []).append(
            MeterTotal(row["meter"], to_quantity(row["quantity"]), to_decimal(row["charge_usd"]))
        )
    return found


async def meters_charge(conn: Connection, *, user_id: int, month: Month) -> Decimal:
    """The meters' part of the month's usage charge."""
    found = (await month_meters(conn, user_id=user_id, months=[month])).get(month, [])
    return sum((meter.charge_usd for meter in found), start=Decimal("0.00"))
