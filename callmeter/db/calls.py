"""Reads of `call_usage`: one call, a keyset-paginated history, the calls in progress.

History is ordered newest first by `sort_at` (when the call was answered, else its first event) and
then `id`, which the composite indexes serve directly, so a deep page costs what the first one does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Select, bindparam, func, or_, select, tuple_
from sqlalchemy.dialects.postgresql import ARRAY

from callmeter.billing.meters import MeterTotal
from callmeter.call_lifecycle import CALL_SID, CallStatus
from callmeter.db.connection import Connection
from callmeter.db.locks import is_postgres
from callmeter.db.meter_tables import usage_events
from callmeter.db.prepared import Prepared
from callmeter.db.tables import agents, call_usage
from callmeter.db.types import to_decimal, to_quantity, to_utc
from callmeter.months import Month
from callmeter.rows import AgentUsageRow, CallRow


def call_row(row: Mapping[str, Any]) -> CallRow:
    return CallRow(
        id=row["id"],
        call_sid=row["call_sid"],
        user_id=row["user_id"],
        agent_id=row["agent_id"],
        agent_name=row["agent_name"],
        call_from=row["call_from"],
        call_to=row["call_to"],
        direction=row["direction"],
        status=CallStatus(row["status"]),
        twilio_status=row["twilio_status"],
        duration_seconds=row["duration_seconds"],
        billable_seconds=row["billable_seconds"],
        cost_usd=to_decimal(row["cost_usd"]),
        first_event_at=to_utc(row["first_event_at"]),
        started_at=row["started_at"] and to_utc(row["started_at"]),
        ended_at=row["ended_at"] and to_utc(row["ended_at"]),
        sort_at=to_utc(row["sort_at"]),
        month=Month.stored(row["month"]),
        stale_at=row["stale_at"] and to_utc(row["stale_at"]),
        terminated_reason=row["terminated_reason"],
    )


_CALL_COLUMNS = select(call_usage, agents.c.name.label("agent_name")).outerjoin(
    agents, agents.c.id == call_usage.c.agent_id
)


async def fetch_call(conn: Connection, *, user_id: int, call_sid: str) -> CallRow | None:
    if not CALL_SID.match(call_sid):
        return None  # never stored (and a NUL in it would be an error on PostgreSQL)
    row = await conn.fetch_one(
        _CALL_COLUMNS.where(call_usage.c.user_id == user_id, call_usage.c.call_sid == call_sid)
    )
    return call_row(row) if row else None


async def fetch_calls_by_ids(conn: Connection, *, ids: Sequence[int]) -> list[CallRow]:
    rows = await conn.fetch_all(_CALL_COLUMNS.where(call_usage.c.id.in_(list(ids))))
    return [call_row(row) for row in rows]


@cache
def _page_query(*, status: bool, agent: bool, before: bool) -> Prepared:
    """One statement per combination of filters, compiled once."""
    query = _CALL_COLUMNS.where(call_usage.c.user_id == bindparam("user_id"))
    if status:
        query = query.where(call_usage.c.status == bindparam("status"))
    if agent:
        query = query.where(call_usage.c.agent_id == bindparam("agent_id"))
    if before:
        # A row-value comparison is an index range condition; the equivalent OR is only a filter.
        query = query.where(
            tuple_(call_usage.c.sort_at, call_usage.c.id)
            < tuple_(
                bindparam("sort_at", type_=call_usage.c.sort_at.type),
                bindparam("call_id", type_=call_usage.c.id.type),
            )
        )
    query = query.order_by(call_usage.c.sort_at.desc(), call_usage.c.id.desc()).limit(bindparam("limit"))
    return Prepared(query)


async def list_calls(
    conn: Connection,
    *,
    user_id: int,
    limit: int,
    before: tuple[datetime, int] | None = None,
    status: CallStatus | None = None,
    agent_id: int | None = None,
) -> list[CallRow]:
    """Up to `limit` calls newest first, strictly after the keyset position `before`."""
    query = _page_query(status=status is not None, agent=agent_id is not None, before=before is not None)
    params: dict[str, Any] = {"user_id": user_id, "limit": limit, "status": status, "agent_id": agent_id}
    if before is not None:
        params["sort_at"], params["call_id"] = before
    return [call_row(row) for row in await query.fetch_all(conn, **params)]


async def list_active_calls(conn: Connection, *, user_id: int) -> list[CallRow]:
    """The answered calls of a user not yet in a final status, newest first."""
    rows = await _ACTIVE.fetch_all(conn, user_id=user_id, status=CallStatus.ACTIVE)
    return [call_row(row) for row in rows]


def active_calls_query(*, answered: bool) -> Select[Any]:
    """The calls of the user (bind parameter `user_id`) in progress (`status`: ACTIVE), unordered."""
    conditions = [call_usage.c.user_id == bindparam("user_id"), call_usage.c.status == bindparam("status")]
    if answered:
        conditions.append(call_usage.c.started_at.is_not(None))
    return _CALL_COLUMNS.where(*conditions)


_ACTIVE = Prepared(
    active_calls_query(answered=True).order_by(call_usage.c.sort_at.desc(), call_usage.c.id.desc())
)


async def usage_by_agent(conn: Connection, *, user_id: int, month: Month) -> list[AgentUsageRow]:
    """Completed calls of a month per agent, most seconds first, their cost with their metered usage;
    served by the (user_id, month, month_position) index."""
    query = (
        select(call_usage.c.agent_id, agents.c.name, call_usage.c.duration_seconds, call_usage.c.cost_usd)
        .outerjoin(agents, agents.c.id == call_usage.c.agent_id)
        .where(
            call_usage.c.user_id == user_id,
            call_usage.c.month == str(month),
            call_usage.c.month_position.is_not(None),
            call_usage.c.status == CallStatus.COMPLETED,
        )
    )
    totals: dict[int | None, AgentUsageRow] = {}
    # Costs are added in Python: SQLite keeps money as text, and Decimal keeps it exact.
    for row in await conn.fetch_all(query):
        known = totals.get(row["agent_id"]) or AgentUsageRow(row["agent_id"], row["name"], 0, 0, Decimal(0))
        totals[row["agent_id"]] = AgentUsageRow(
            known.agent_id,
            known.agent_name,
            known.total_calls + 1,
            known.total_seconds + row["duration_seconds"],
            known.total_cost_usd + to_decimal(row["cost_usd"]),
        )
    # The calls' metered usage, counted per distinct cost (few: most events cost 0.00 or 0.01).
    metered = (
        select(call_usage.c.agent_id, usage_events.c.cost_usd, func.count().label("events"))
        .join(call_usage, call_usage.c.id == usage_events.c.call_id)
        .where(
            usage_events.c.user_id == user_id,
            usage_events.c.month == str(month),
            call_usage.c.status == CallStatus.COMPLETED,
        )
        .group_by(call_usage.c.agent_id, usage_events.c.cost_usd)
    )
    for row in await conn.fetch_all(metered):
        known = totals.get(row["agent_id"])
        if known is not None:
            cost = known.total_cost_usd + to_decimal(row["cost_usd"]) * row["events"]
            totals[row["agent_id"]] = replace(known, total_cost_usd=cost)
    return sorted(totals.values(), key=lambda row: (-row.total_seconds, row.agent_id or 0))


async def stale_calls(conn: Connection, *, idle_since: datetime, limit: int = 500) -> list[CallRow]:
    """Calls still active whose last change is older than `idle_since` and that reconciliation has
    not asked about since then: never asked first, then the longest ago, so calls it cannot close
    (unknown to Twilio, or Twilio failing) never hold back the others."""
    query = (
        _CALL_COLUMNS.where(
            call_usage.c.status == CallStatus.ACTIVE,
            call_usage.c.updated_at < idle_since,
            or_(call_usage.c.reconciled_at.is_(None), call_usage.c.reconciled_at < idle_since),
        )
        .order_by(call_usage.c.reconciled_at.asc().nulls_first(), call_usage.c.updated_at)
        .limit(limit)
    )
    return [call_row(row) for row in await conn.fetch_all(query)]


async def mark_reconciled(conn: Connection, *, call_ids: Sequence[int], at: datetime) -> None:
    """Record that reconciliation asked about these calls now."""
    query = call_usage.update().where(call_usage.c.id.in_(list(call_ids))).values(reconciled_at=at)
    await conn.execute(query)


async def mark_stale(conn: Connection, *, call_id: int, at: datetime) -> None:
    """Flag a call that could not be reconciled; it stays active, its cost is never guessed."""
    await conn.execute(
        call_usage.update()
        .where(call_usage.c.id == call_id, call_usage.c.stale_at.is_(None))
        .values(stale_at=at)
    )


async def count_active_calls(conn: Connection) -> int:
    return await conn.fetch_val(
        select(func.count()).select_from(call_usage).where(call_usage.c.status == CallStatus.ACTIVE)
    )


async def with_meters(conn: Connection, rows: list[CallRow]) -> list[CallRow]:
    """The calls with their billed usage events by meter (one query for them all)."""
    found = await call_meters(conn, call_ids=[row.id for row in rows])
    return [replace(row, meters=tuple(found[row.id])) if row.id in found else row for row in rows]


_METERS = select(
    usage_events.c.call_id, usage_events.c.meter, usage_events.c.quantity, usage_events.c.cost_usd
).where(usage_events.c.month.is_not(None))
_CALL_METERS = Prepared(
    _METERS.where(usage_events.c.call_id == func.any(bindparam("call_ids", type_=ARRAY(BigInteger))))
)


async def call_meters(conn: Connection, *, call_ids: Sequence[int]) -> dict[int, list[MeterTotal]]:
    """Each call's billed meters, by name (calls without any are left out)."""
    if not call_ids:
        return {}
    if is_postgres(conn):  # compiled once: every page of calls asks this
        rows = await _CALL_METERS.fetch_all(conn, call_ids=list(call_ids))
    else:
        rows = await conn.fetch_all(_METERS.where(usage_events.c.call_id.in_(list(call_ids))))
    sums: dict[int, dict[str, tuple[Decimal, Decimal]]] = {}
    for row in rows:
        meters = sums.setdefault(row["call_id"], {})
        quantity, cost = meters.get(row["meter"], (Decimal(0), Decimal("0.00")))
        meters[row["meter"]] = (quantity + to_quantity(row["quantity"]), cost + to_decimal(row["cost_usd"]))
    return {
        call_id: [MeterTotal(meter, *meters[meter]) for meter in sorted(meters)]
        for call_id, meters in sums.items()
    }
