"""Stored pricing plans and which plan bills a user's month."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert

from callmeter.billing.meters import MeterRate
from callmeter.billing.plans import Plan, PlanKind, Tier
from callmeter.db.connection import Connection
from callmeter.db.prepared import Prepared
from callmeter.db.tables import plan_assignments, plans
from callmeter.db.types import to_decimal, to_quantity
from callmeter.months import Month


def plan_from_record(row: Any) -> Plan:
    def money(name: str) -> Any:
        return None if row[name] is None else to_decimal(row[name])

    tiers = tuple(
        Tier(tier["up_to_minutes"], to_decimal(tier["rate_per_minute"]))
        for tier in json.loads(row["tiers"] or "[]")
    )
    return Plan(
        id=row["id"],
        name=row["name"],
        kind=PlanKind(row["kind"]),
        rate_per_minute=money("rate_per_minute"),
        tiers=tiers,
        monthly_fee_usd=money("monthly_fee_usd") or to_decimal(0),
        included_minutes=row["included_minutes"] or 0,
        overage_rate_per_minute=money("overage_rate_per_minute"),
        billing_increment_seconds=row["billing_increment_seconds"],
        minimum_billable_seconds=row["minimum_billable_seconds"],
        meter_rates=tuple(
            MeterRate(rate["meter"], to_quantity(rate["unit_size"]), to_quantity(rate["rate_per_unit"]))
            for rate in json.loads(row["meter_rates"] or "[]")
        ),
    )


# An assignment with no plan_id moves the user back to the default plan: the outer join keeps it.
_ASSIGNED = plan_assignments.outerjoin(plans, plan_assignments.c.plan_id == plans.c.id)

_PLAN_FOR_MONTH = Prepared(
    select(plans, plan_assignments.c.plan_id.label("assigned_plan_id"))
    .select_from(_ASSIGNED)
    .where(
        plan_assignments.c.user_id == bindparam("user_id"),
        plan_assignments.c.from_month <= bindparam("month"),
    )
    .order_by(plan_assignments.c.from_month.desc())
    .limit(1)
)


async def plan_for_month(conn: Connection, *, user_id: int, month: Month) -> Plan | None:
    """The plan assigned to the user from `month` or the latest month before it; None: the default."""
    row = await _PLAN_FOR_MONTH.fetch_one(conn, user_id=user_id, month=str(month))
    return plan_from_record(row) if row and row["assigned_plan_id"] is not None else None


_PLAN_SCHEDULE = Prepared(
    select(plans, plan_assignments.c.plan_id.label("assigned_plan_id"), plan_assignments.c.from_month)
    .select_from(_ASSIGNED)
    .where(plan_assignments.c.user_id == bindparam("user_id"))
    .order_by(plan_assignments.c.from_month)
)


# The columns a schedule is read from, for statements that join it to more (as the call gate does).
SCHEDULE_COLUMNS = (
    *(column for column in plans.c if column.name != "created_at"),
    plan_assignments.c.plan_id.label("assigned_plan_id"),
    plan_assignments.c.from_month,
)


def schedule_from_rows(rows: Iterable[Any]) -> list[tuple[Month, Plan | None]]:
    """(from month, plan; None: the default plan) of rows with `SCHEDULE_COLUMNS`, in their order;
    rows of an outer join that found no assignment are skipped."""
    return [
        (Month.stored(row["from_month"]), None if row["assigned_plan_id"] is None else plan_from_record(row))
        for row in rows
        if row["from_month"] is not None
    ]


async def plan_schedule(conn: Connection, *, user_id: int) -> list[tuple[Month, Plan | None]]:
    """All of a user's plan assignments as (from month, plan; None: the default plan), oldest first."""
    return schedule_from_rows(await _PLAN_SCHEDULE.fetch_all(conn, user_id=user_id))


def _plan_values(plan: Plan) -> dict[str, Any]:
    tiers = [
        {"up_to_minutes": tier.up_to_minutes, "rate_per_minute": str(tier.rate_per_minute)}
        for tier in plan.tiers
    ]
    return {
        "name": plan.name,
        "kind": str(plan.kind),
        "rate_per_minute": plan.rate_per_minute,
        "tiers": json.dumps(tiers) if tiers else None,
        "monthly_fee_usd": plan.monthly_fee_usd,
        "included_minutes": plan.included_minutes,
        "overage_rate_per_minute": plan.overage_rate_per_minute,
        "billing_increment_seconds": plan.billing_increment_seconds,
        "minimum_billable_seconds": plan.minimum_billable_seconds,
        "meter_rates": json.dumps(
            [
                {
                    "meter": rate.meter,
                    "unit_size": str(rate.unit_size),
                    "rate_per_unit": str(rate.rate_per_unit),
                }
                for rate in plan.meter_rates
            ]
        ),
    }


async def insert_plan(conn: Connection, *, plan: Plan) -> Plan:
    row = await conn.fetch_one(
        plans.insert().values(**_plan_values(plan), created_at=datetime.now(UTC)).returning(*plans.c)
    )
    return plan_from_record(row)


async def fetch_plan(conn: Connection, *, plan_id: int) -> Plan | None:
    row = await conn.fetch_one(select(plans).where(plans.c.id == plan_id))
    return plan_from_record(row) if row else None


async def list_plans(conn: Connection) -> list[Plan]:
    return [plan_from_record(row) for row in await conn.fetch_all(select(plans).order_by(plans.c.id))]


async def assign_plan(conn: Connection, *, user_id: int, plan_id: int | None, from_month: Month) -> None:
    """The plan (None: the default plan) bills the user from `from_month` on, until a later one does."""
    now = datetime.now(UTC)
    await conn.execute(
        insert(plan_assignments)
        .values(user_id=user_id, from_month=str(from_month), plan_id=plan_id, assigned_at=now)
        .on_conflict_do_update(
            index_elements=["user_id", "from_month"], set_={"plan_id": plan_id, "assigned_at": now}
        )
    )
