"""Finalized invoices, their lines and adjustments, and the Stripe ids they were pushed under."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.dialects.postgresql import insert

from callmeter.billing.invoices import InvoiceLine, line_quantity
from callmeter.db.connection import Connection
from callmeter.db.tables import (
    invoice_adjustments,
    invoice_lines,
    invoices,
    monthly_usage,
    plan_assignments,
    stripe_customers,
)
from callmeter.db.types import to_decimal, to_utc


@dataclass(frozen=True)
class BilledUsage:
    """What has been billed for one month so far: its invoice plus later adjustments."""

    month: str
    calls: int
    seconds: int
    billable_seconds: int
    charge_usd: Decimal  # the month's own charge: fixed fee plus usage
    plan_id: int | None  # the plan it was last billed by; None: the default plan
    plan_name: str


@dataclass(frozen=True)
class AdjustmentRow:
    for_month: str
    calls: int
    seconds: int
    billable_seconds: int
    amount_usd: Decimal
    plan_id: int | None
    plan_name: str | None  # None: not recorded (written before migration 0004)


@dataclass(frozen=True)
class InvoiceRow:
    id: int
    user_id: int
    month: str
    number: str
    plan_name: str
    total_usd: Decimal
    finalized_at: datetime
    stripe_invoice_id: str | None
    lines: tuple[InvoiceLine, ...]


async def _lines_of(conn: Connection, invoice_ids: Sequence[int]) -> dict[int, list[InvoiceLine]]:
    rows = await conn.fetch_all(
        select(invoice_lines)
        .where(invoice_lines.c.invoice_id.in_(list(invoice_ids)))
        .order_by(invoice_lines.c.invoice_id, invoice_lines.c.position)
    )
    found: dict[int, list[InvoiceLine]] = {}
    for row in rows:
        found.setdefault(row["invoice_id"], []).append(
            InvoiceLine(
                position=row["position"],
                description=row["description"],
                quantity=line_quantity(to_decimal(row["quantity"])),
                unit_price_usd=to_decimal(row["unit_price_usd"]),
                amount_usd=to_decimal(row["amount_usd"]),
            )
        )
    return found


def _invoice(row: Any, lines: list[InvoiceLine]) -> InvoiceRow:
    return InvoiceRow(
        id=row["id"],
        user_id=row["user_id"],
        month=row["month"],
        number=row["number"],
        plan_name=row["plan_name"],
        total_usd=to_decimal(row["total_usd"]),
        finalized_at=to_utc(row["finalized_at"]),
        stripe_invoice_id=row["stripe_invoice_id"],
        lines=tuple(lines),
    )


async def fetch_invoices(
    conn: Connection, *, user_id: int | None = None, month: str | None = None
) -> list[InvoiceRow]:
    """Finalized invoices of a user and/or a month, newest month first."""
    query = select(invoices)
    if user_id is not None:
        query = query.where(invoices.c.user_id == user_id)
    if month is not None:
        query = query.where(invoices.c.month == month)
    rows = await conn.fetch_all(query.order_by(invoices.c.month.desc(), invoices.c.user_id))
    lines = await _lines_of(conn, [row["id"] for row in rows]) if rows else {}
    return [_invoice(row, lines.get(row["id"], [])) for row in rows]


async def billed_usage(conn: Connection, *, user_id: int, before_month: str) -> list[BilledUsage]:
    """For each invoiced month before `before_month`: what its invoice and adjustments billed."""
    invoiced = await conn.fetch_all(
        select(invoices)
        .where(invoices.c.user_id == user_id, invoices.c.month < before_month)
        .order_by(invoices.c.month)
    )
    # Money is summed in Python: SQLite keeps it as text. Invoice ids grow with finalization, so
    # a month's last recorded plan is that of its latest adjustment.
    adjusted = await conn.fetch_all(
        select(invoice_adjustments)
        .where(invoice_adjustments.c.user_id == user_id)
        .order_by(invoice_adjustments.c.invoice_id)
    )
    carried: dict[int, Decimal] = {}  # by invoice: what it billed for other months
    later: dict[str, list[Any]] = {}  # by month: the adjustments billed for it
    for row in adjusted:
        amount = to_decimal(row["amount_usd"])
        carried[row["invoice_id"]] = carried.get(row["invoice_id"], Decimal(0)) + amount
        later.setdefault(row["for_month"], []).append(row)
    result = []
    for row in invoiced:
        more = later.get(row["month"], [])
        billed_by = [(row["plan_id"], row["plan_name"])]
        billed_by += [
            (extra["plan_id"], extra["plan_name"]) for extra in more if extra["plan_name"] is not None
        ]
        # The invoice's own charge is its total less the adjustments it carried for other months.
        own = to_decimal(row["total_usd"]) - carried.get(row["id"], Decimal(0))
        result.append(
            BilledUsage(
                month=row["month"],
                calls=row["billed_calls"] + sum(extra["calls"] for extra in more),
                seconds=row["billed_seconds"] + sum(extra["seconds"] for extra in more),
                billable_seconds=row["billed_billable_seconds"]
                + sum(extra["billable_seconds"] for extra in more),
                charge_usd=own + sum((to_decimal(extra["amount_usd"]) for extra in more), start=Decimal(0)),
                plan_id=billed_by[-1][0],
                plan_name=billed_by[-1][1],
            )
        )
    return result


async def insert_invoice(
    conn: Connection,
    *,
    user_id: int,
    month: str,
    plan_id: int | None,
    plan_name: str,
    billed: BilledUsage,
    usage_charge_usd: Decimal,
    lines: Sequence[InvoiceLine],
    adjustments: Sequence[AdjustmentRow],
    total_usd: Decimal,
) -> InvoiceRow | None:
    """Store a finalized invoice; None when the month was finalized already (by a concurrent call)."""
    now = datetime.now(UTC)
    provisional = f"pending-{user_id}-{month}"
    invoice_id = await conn.fetch_val(
        insert(invoices)
        .values(
            user_id=user_id,
            month=month,
            number=provisional,
            plan_id=plan_id,
            plan_name=plan_name,
            billed_calls=billed.calls,
            billed_seconds=billed.seconds,
            billed_billable_seconds=billed.billable_seconds,
            billed_usage_charge_usd=usage_charge_usd,
            total_usd=total_usd,
            finalized_at=now,
        )
        .on_conflict_do_nothing(index_elements=["user_id", "month"])
        .returning(invoices.c.id)
    )
    if invoice_id is None:
        return None
    number = f"CM-{month.replace('-', '')}-{invoice_id:06d}"
    await conn.execute(invoices.update().where(invoices.c.id == invoice_id).values(number=number))
    for line in lines:
        await conn.execute(
            invoice_lines.insert().values(
                invoice_id=invoice_id,
                position=line.position,
                description=line.description,
                quantity=line.quantity,
                unit_price_usd=line.unit_price_usd,
                amount_usd=line.amount_usd,
            )
        )
    for adjustment in adjustments:
        await conn.execute(
            invoice_adjustments.insert().values(
                invoice_id=invoice_id,
                for_month=adjustment.for_month,
                user_id=user_id,
                calls=adjustment.calls,
                seconds=adjustment.seconds,
                billable_seconds=adjustment.billable_seconds,
                amount_usd=adjustment.amount_usd,
                plan_id=adjustment.plan_id,
                plan_name=adjustment.plan_name,
            )
        )
    (invoice,) = await fetch_invoices(conn, user_id=user_id, month=month)
    return invoice


async def users_to_invoice(conn: Connection, *, month: str) -> list[int]:
    """Users who may owe something for `month`: usage then, a plan in force, or earlier invoices."""
    query = union(
        select(monthly_usage.c.user_id).where(monthly_usage.c.month == month),
        select(plan_assignments.c.user_id).where(plan_assignments.c.from_month <= month),
        select(invoices.c.user_id).where(invoices.c.month < month),
    )
    return sorted(row[0] for row in await conn.fetch_all(query))


async def set_stripe_invoice_id(conn: Connection, *, invoice_id: int, stripe_invoice_id: str) -> None:
    await conn.execute(
        invoices.update().where(invoices.c.id == invoice_id).values(stripe_invoice_id=stripe_invoice_id)
    )


async def fetch_stripe_customer(conn: Connection, *, user_id: int) -> str | None:
    return await conn.fetch_val(
        select(stripe_customers.c.customer_id).where(stripe_customers.c.user_id == user_id)
    )


async def save_stripe_customer(conn: Connection, *, user_id: int, customer_id: str) -> None:
    await conn.execute(
        insert(stripe_customers)
        .values(user_id=user_id, customer_id=customer_id)
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
