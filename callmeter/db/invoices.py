"""Finalized invoices, their lines and adjustments, and the Stripe ids they were pushed under."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.dialects.postgresql import insert

from callmeter.billing.adjustments import Adjustment, InvoicedMonth
from callmeter.billing.invoices import Draft, InvoiceLine, InvoiceStatus, InvoiceView, line_quantity
from callmeter.db.connection import Connection
from callmeter.db.tables import (
    invoice_adjustments,
    invoice_lines,
    invoices,
    monthly_usage,
    plan_assignments,
    stripe_customers,
)
from callmeter.db.types import to_decimal
from callmeter.months import Month


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


def _view(row: Mapping[str, Any], lines: list[InvoiceLine]) -> InvoiceView:
    return InvoiceView(
        user_id=row["user_id"],
        month=Month.stored(row["month"]),
        status=InvoiceStatus.FINALIZED,
        number=row["number"],
        lines=tuple(lines),
        total_usd=to_decimal(row["total_usd"]),
        stripe_invoice_id=row["stripe_invoice_id"],
        id=row["id"],
    )


async def fetch_invoices(
    conn: Connection, *, user_id: int | None = None, month: Month | None = None
) -> list[InvoiceView]:
    """Finalized invoices of a user and/or a month, newest month first."""
    query = select(invoices)
    if user_id is not None:
        query = query.where(invoices.c.user_id == user_id)
    if month is not None:
        query = query.where(invoices.c.month == str(month))
    rows = await conn.fetch_all(query.order_by(invoices.c.month.desc(), invoices.c.user_id))
    lines = await _lines_of(conn, [row["id"] for row in rows]) if rows else {}
    return [_view(row, lines.get(row["id"], [])) for row in rows]


async def invoiced_months(
    conn: Connection, *, user_id: int, before: Month
) -> tuple[list[InvoicedMonth], list[tuple[int, Adjustment]]]:
    """What each of the user's invoices before `before` billed for its month, and every adjustment
    billed since (invoice id, adjustment) in the order they were finalized."""
    invoiced = await conn.fetch_all(
        select(invoices)
        .where(invoices.c.user_id == user_id, invoices.c.month < str(before))
        .order_by(invoices.c.month)
    )
    # Invoice ids grow with finalization, so ordering by them is the order adjustments were billed.
    adjusted = await conn.fetch_all(
        select(invoice_adjustments)
        .where(invoice_adjustments.c.user_id == user_id)
        .order_by(invoice_adjustments.c.invoice_id)
    )
    months = [
        InvoicedMonth(
            invoice_id=row["id"],
            month=Month.stored(row["month"]),
            calls=row["billed_calls"],
            seconds=row["billed_seconds"],
            billable_seconds=row["billed_billable_seconds"],
            total_usd=to_decimal(row["total_usd"]),
            credits_applied_usd=to_decimal(row["credits_applied_usd"]),
            plan_id=row["plan_id"],
            plan_name=row["plan_name"],
        )
        for row in invoiced
    ]
    adjustments = [
        (
            row["invoice_id"],
            Adjustment(
                month=Month.stored(row["for_month"]),
                calls=row["calls"],
                seconds=row["seconds"],
                billable_seconds=row["billable_seconds"],
                amount_usd=to_decimal(row["amount_usd"]),
                plan_id=row["plan_id"],
                plan_name=row["plan_name"],
            ),
        )
        for row in adjusted
    ]
    return months, adjustments


async def insert_invoice(conn: Connection, *, draft: Draft) -> InvoiceView | None:
    """Store a draft as its finalized invoice; None when the month was finalized already (by a
    concurrent call)."""
    view, billed = draft.view, draft.billed
    invoice_id = await conn.fetch_val(
        insert(invoices)
        .values(
            user_id=view.user_id,
            month=str(view.month),
            number=f"pending-{view.user_id}-{view.month}",
            plan_id=draft.plan.id,
            plan_name=draft.plan.name,
            billed_calls=billed.calls,
            billed_seconds=billed.seconds,
            billed_billable_seconds=billed.billable_seconds,
            billed_usage_charge_usd=draft.usage_charge_usd,
            total_usd=view.total_usd,
            credits_applied_usd=draft.credits_applied_usd,
            finalized_at=datetime.now(UTC),
        )
        .on_conflict_do_nothing(index_elements=["user_id", "month"])
        .returning(invoices.c.id)
    )
    if invoice_id is None:
        return None
    number = f"CM-{view.month.year:04d}{view.month.month:02d}-{invoice_id:06d}"
    await conn.execute(invoices.update().where(invoices.c.id == invoice_id).values(number=number))
    for line in view.lines:
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
    for adjustment in draft.adjustments:
        await conn.execute(
            invoice_adjustments.insert().values(
                invoice_id=invoice_id,
                for_month=str(adjustment.month),
                user_id=view.user_id,
                calls=adjustment.calls,
                seconds=adjustment.seconds,
                billable_seconds=adjustment.billable_seconds,
                amount_usd=adjustment.amount_usd,
                plan_id=adjustment.plan_id,
                plan_name=adjustment.plan_name,
            )
        )
    (invoice,) = await fetch_invoices(conn, user_id=view.user_id, month=view.month)
    return invoice


async def users_to_invoice(conn: Connection, *, month: Month) -> list[int]:
    """Users who may owe something for `month`: usage then, a plan in force, or earlier invoices."""
    query = union(
        select(monthly_usage.c.user_id).where(monthly_usage.c.month == str(month)),
        select(plan_assignments.c.user_id).where(plan_assignments.c.from_month <= str(month)),
        select(invoices.c.user_id).where(invoices.c.month < str(month)),
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
