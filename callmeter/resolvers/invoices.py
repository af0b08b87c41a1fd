"""Invoices: a live draft for any month not yet finalized, and finalization of closed months.

A finalized invoice never changes. Whatever changes later in an invoiced month (a late callback, a
re-rating after a plan change) is the difference between that month's usage now and what was billed
for it so far; it is billed as an adjustment line on the next invoice that is drafted or finalized.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from callmeter.billing.invoices import Adjustment, InvoiceLine, build_invoice_lines, invoice_total
from callmeter.billing.money import minutes_of
from callmeter.billing.plans import Plan, plan_in_force
from callmeter.db import invoices, plans, usage
from callmeter.db.connection import Connection, Database, lock_user_billing
from callmeter.db.invoices import AdjustmentRow, BilledUsage, InvoiceRow
from callmeter.db.usage import MonthlyUsageRow
from callmeter.errors import BadInputError
from callmeter.months import Month
from callmeter.resolvers.usage import billable_months, summarize


@dataclass(frozen=True)
class InvoiceView:
    user_id: int
    month: str
    status: str  # DRAFT or FINALIZED
    number: str | None
    lines: tuple[InvoiceLine, ...]
    total_usd: Decimal
    stripe_invoice_id: str | None = None
    id: int | None = None

    @classmethod
    def finalized(cls, row: InvoiceRow) -> InvoiceView:
        return cls(
            row.user_id,
            row.month,
            "FINALIZED",
            row.number,
            row.lines,
            row.total_usd,
            row.stripe_invoice_id,
            row.id,
        )


@dataclass(frozen=True)
class Draft:
    view: InvoiceView
    plan: Plan
    billed: BilledUsage
    usage_charge_usd: Decimal
    adjustments: tuple[AdjustmentRow, ...]

    @property
    def owes_nothing(self) -> bool:
        return self.billed.calls == 0 and not self.adjustments and self.view.total_usd == 0


def _describe(row: AdjustmentRow, billed: BilledUsage) -> str:
    changes = []
    if row.plan_id != billed.plan_id:
        changes.append(f"re-rated on plan {row.plan_name}")
    if row.calls or row.seconds:
        plural = "call" if abs(row.calls) == 1 else "calls"
        changes.append(f"{row.calls:+d} {plural}, {minutes_of(row.seconds):+} min after invoicing")
    return "; ".join(changes) or "re-rated after invoicing"


async def pending_adjustments(
    conn: Connection, *, user_id: int, month: str, default_plan: Plan
) -> list[tuple[AdjustmentRow, str]]:
    """What changed in invoiced months before `month` since they were billed, and how to say so.

    The amount is the month's whole charge now (fixed fee and usage, by the plan in force now) less
    all that was billed for it, so a later change bills only its own difference, exactly once.
    """
    billed_months = await invoices.billed_usage(conn, user_id=user_id, before_month=month)
    if not billed_months:
        return []
    schedule = await plans.plan_schedule(conn, user_id=user_id, default_plan=default_plan)
    used = {
        row.month: row
        for row in await usage.fetch_months(conn, user_id=user_id, first=billed_months[0].month, last=month)
    }
    pending = []
    for billed in billed_months:
        now = used.get(billed.month) or MonthlyUsageRow.empty(user_id, billed.month)
        plan = plan_in_force(schedule, billed.month, default_plan)
        row = AdjustmentRow(
            for_month=billed.month,
            calls=now.total_calls - billed.calls,
            seconds=now.total_seconds - billed.seconds,
            billable_seconds=now.billable_seconds - billed.billable_seconds,
            amount_usd=summarize(now, plan).total_cost_usd - billed.charge_usd,
            plan_id=plan.id,
            plan_name=plan.name,
        )
        if row.calls or row.seconds or row.billable_seconds or row.amount_usd:
            pending.append((row, _describe(row, billed)))
    return pending


async def draft_invoice(conn: Connection, *, user_id: int, month: Month, default_plan: Plan) -> Draft:
    plan = await plans.plan_for_month(conn, user_id=user_id, month=str(month)) or default_plan
    totals = await usage.fetch_month(conn, user_id=user_id, month=str(month))
    pending = await pending_adjustments(conn, user_id=user_id, month=str(month), default_plan=default_plan)
    lines = build_invoice_lines(
        plan,
        month=str(month),
        billable_seconds=totals.billable_seconds,
        adjustments=[
            Adjustment(row.for_month, description, row.billable_seconds, row.amount_usd)
            for row, description in pending
        ],
    )
    view = InvoiceView(user_id, str(month), "DRAFT", None, tuple(lines), invoice_total(lines))
    billed = BilledUsage(
        str(month),
        totals.total_calls,
        totals.total_seconds,
        totals.billable_seconds,
        summarize(totals, plan).total_cost_usd,
        plan.id,
        plan.name,
    )
    return Draft(view, plan, billed, totals.usage_charge_usd, tuple(row for row, _ in pending))


async def invoice_for(conn: Connection, *, user_id: int, month: Month, default_plan: Plan) -> InvoiceView:
    found = await invoices.fetch_invoices(conn, user_id=user_id, month=str(month))
    if found:
        return InvoiceView.finalized(found[0])
    return (await draft_invoice(conn, user_id=user_id, month=month, default_plan=default_plan)).view


async def invoices_of(conn: Connection, *, user_id: int, default_plan: Plan) -> list[InvoiceView]:
    """Newest month first: every finalized invoice, and a live draft for this month and for every
    earlier month with usage or a fixed fee that is not finalized."""
    current = Month.current()
    views = {
        row.month: InvoiceView.finalized(row) for row in await invoices.fetch_invoices(conn, user_id=user_id)
    }
    open_months = await billable_months(conn, user_id=user_id, last=current, default_plan=default_plan)
    for month in {*open_months, str(current)} - views.keys():
        draft = await draft_invoice(
            conn, user_id=user_id, month=Month.parse(month), default_plan=default_plan
        )
        views[month] = draft.view
    return [views[month] for month in sorted(views, reverse=True)]


async def month_invoices(
    conn: Connection, *, month: Month, user_id: int | None, default_plan: Plan
) -> list[InvoiceView]:
    """A month's invoices: the finalized ones, else live drafts for the users who owe something."""
    users = [user_id] if user_id else await invoices.users_to_invoice(conn, month=str(month))
    views = []
    for user in users:
        found = await invoices.fetch_invoices(conn, user_id=user, month=str(month))
        if found:
            views.append(InvoiceView.finalized(found[0]))
            continue
        draft = await draft_invoice(conn, user_id=user, month=month, default_plan=default_plan)
        if user_id or not draft.owes_nothing:
            views.append(draft.view)
    return views


async def finalize_month(
    db: Database, *, month: Month, default_plan: Plan, user_id: int | None = None
) -> list[InvoiceView]:
    """Finalize every invoice owed for a closed month (idempotent: finalized ones are returned)."""
    if month >= Month.current():
        raise BadInputError(f"{month} is not closed yet: only a past month can be finalized")
    async with db.connection() as conn:
        users = [user_id] if user_id else await invoices.users_to_invoice(conn, month=str(month))
    finalized = []
    for user in users:
        async with db.transaction() as conn:
            # Under the user's billing lock a completing call is either in this invoice or later.
            await lock_user_billing(conn, user_id=user)
            existing = await invoices.fetch_invoices(conn, user_id=user, month=str(month))
            if existing:
                finalized.append(InvoiceView.finalized(existing[0]))
                continue
            draft = await draft_invoice(conn, user_id=user, month=month, default_plan=default_plan)
            if draft.owes_nothing:
                continue
            row = await invoices.insert_invoice(
                conn,
                user_id=user,
                month=str(month),
                plan_id=draft.plan.id,
                plan_name=draft.plan.name,
                billed=draft.billed,
                usage_charge_usd=draft.usage_charge_usd,
                lines=draft.view.lines,
                adjustments=draft.adjustments,
                total_usd=draft.view.total_usd,
            )
            if row is not None:
                finalized.append(InvoiceView.finalized(row))
    return finalized
