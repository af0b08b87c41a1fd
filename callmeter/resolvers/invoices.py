"""Invoices: a live draft for any month not yet finalized, and finalization of closed months.

The rules (lines, adjustments, what a draft owes) are `billing/`'s; this reads what they need and
writes what finalization decides, each user's month in one transaction under their billing lock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from callmeter.billing.adjustments import billed_usage, pending_adjustments
from callmeter.billing.credits import LedgerKind
from callmeter.billing.invoices import Credit, Draft, InvoiceView, draft_invoice
from callmeter.billing.plans import Plan, fixed_fee
from callmeter.billing.usage import billable_months
from callmeter.db import credits, customers, invoices, meter_billing, outbox, plans, usage
from callmeter.db.connection import Connection
from callmeter.db.locks import lock_user_billing
from callmeter.errors import BadInputError
from callmeter.months import UTC_CALENDAR, Month
from callmeter.notifications import EventType
from callmeter.resolvers.customers import calendar_of
from callmeter.resolvers.services import Services


async def _credit(
    conn: Connection, *, user_id: int, month: Month, plan: Plan, invoiced: list[Month]
) -> Credit | None:
    """A prepaid customer's credit as the invoice of `month` sees it: what its months (it, and the
    invoiced months its adjustments are for) charged to the balance since their last invoice."""
    if await credits.fetch_balance(conn, user_id=user_id) is None:
        return None
    draws = await credits.uninvoiced_draws(conn, user_id=user_id, months=[month, *invoiced])
    charged = sum((draw.drawn_usd for draw in draws.values()), start=Decimal("0.00"))
    if month not in draws:  # its fixed fee is charged when it is finalized
        charged += fixed_fee(plan)
    return Credit(charged_usd=charged, left_usd=await credits.credit_left(conn, user_id=user_id))


async def _charge_fee(
    conn: Connection, services: Services, *, user_id: int, month: Month, plan: Plan
) -> None:
    """Finalizing a prepaid customer's month with no call yet charges its fixed fee."""
    customer = await customers.fetch_customer(conn, user_id=user_id)
    if customer is None or customer.balance_usd is None or not fixed_fee(plan):
        return
    await usage.ensure_month(conn, user_id=user_id, month=month, credit_base_usd=Decimal(0))
    totals = await usage.fetch_month(conn, user_id=user_id, month=month)
    await credits.settle(
        conn,
        customer=customer,
        month=month,
        total_cost_usd=fixed_fee(plan) + totals.usage_charge_usd,
        default_plan=services.default_plan,
        kind=LedgerKind.FEE,
        description=f"{plan.name} for {month}",
    )


async def _draft(conn: Connection, services: Services, *, user_id: int, month: Month) -> Draft:
    default_plan = services.default_plan
    plan = await plans.plan_for_month(conn, user_id=user_id, month=month) or default_plan
    totals = await usage.fetch_month(conn, user_id=user_id, month=month)
    invoiced, adjustments = await invoices.invoiced_months(conn, user_id=user_id, before=month)
    credit = await _credit(
        conn, user_id=user_id, month=month, plan=plan, invoiced=[row.month for row in invoiced]
    )
    pending = []
    if invoiced:
        schedule = await plans.plan_schedule(conn, user_id=user_id)
        used = await usage.fetch_months(conn, user_id=user_id, first=invoiced[0].month, last=month)
        pending = pending_adjustments(
            billed_usage(invoiced, adjustments),
            {row.month: row for row in used},
            user_id=user_id,
            schedule=schedule,
            default_plan=default_plan,
        )
    meters = await meter_billing.month_meters(conn, user_id=user_id, months=[month])
    return draft_invoice(totals, plan, pending, credit, meters=meters.get(month, ()))


async def invoice_for(services: Services, *, user_id: int, month: Month) -> InvoiceView:
    async with services.db.connection() as conn:
        found = await invoices.fetch_invoices(conn, user_id=user_id, month=month)
        if found:
            return found[0]
        return (await _draft(conn, services, user_id=user_id, month=month)).view


async def invoices_of(services: Services, *, user_id: int) -> list[InvoiceView]:
    """Newest month first: every finalized invoice, and a live draft for this month and for every
    earlier month with usage or a fixed fee that is not finalized."""
    async with services.db.connection() as conn:
        current = (await calendar_of(conn, services, user_id=user_id)).current()
        views = {view.month: view for view in await invoices.fetch_invoices(conn, user_id=user_id)}
        schedule = await plans.plan_schedule(conn, user_id=user_id)
        used = await usage.fetch_months(conn, user_id=user_id, last=current)
        open_months = billable_months(schedule, used, last=current, default_plan=services.default_plan)
        for month in {*open_months, current} - views.keys():
            views[month] = (await _draft(conn, services, user_id=user_id, month=month)).view
    return [views[month] for month in sorted(views, reverse=True)]


async def month_invoices(services: Services, *, month: Month, user_id: int | None) -> list[InvoiceView]:
    """A month's invoices: the finalized ones, else live drafts for the users who owe something."""
    views = []
    async with services.db.connection() as conn:
        users = [user_id] if user_id else await invoices.users_to_invoice(conn, month=month)
        for user in users:
            found = await invoices.fetch_invoices(conn, user_id=user, month=month)
            if found:
                views.append(found[0])
                continue
            draft = await _draft(conn, services, user_id=user, month=month)
            if user_id or not draft.owes_nothing:
                views.append(draft.view)
    return views


async def finalize_month(
    services: Services, *, month: Month, user_id: int | None = None
) -> list[InvoiceView]:
    """Finalize every invoice owed for `month` by the customers for whom it is over in their zone
    (idempotent: finalized ones are returned). The others wait for a later call; a month over for
    none of them, or not over for the one named, is bad input."""
    now = datetime.now(UTC)
    closed, still_open = [], []
    async with services.db.connection() as conn:
        for user in [user_id] if user_id else await invoices.users_to_invoice(conn, month=month):
            over = (await calendar_of(conn, services, user_id=user)).current(now) > month
            (closed if over else still_open).append(user)
    if not closed and (still_open or month >= UTC_CALENDAR.current(now)):
        raise BadInputError(f"{month} is not closed yet: only a past month can be finalized")
    finalized = []
    for user in closed:
        async with services.db.transaction() as conn:
            # Under the user's billing lock a completing call is either in this invoice or later.
            await lock_user_billing(conn, user_id=user)
            existing = await invoices.fetch_invoices(conn, user_id=user, month=month)
            if existing:
                finalized.append(existing[0])
                continue
            plan = await plans.plan_for_month(conn, user_id=user, month=month) or services.default_plan
            await _charge_fee(conn, services, user_id=user, month=month, plan=plan)
            draft = await _draft(conn, services, user_id=user, month=month)
            if draft.owes_nothing:
                continue
            view = await invoices.insert_invoice(conn, draft=draft)
            if view is not None:
                invoiced = [
                    row.month for row in (await invoices.invoiced_months(conn, user_id=user, before=month))[0]
                ]
                await credits.mark_invoiced(conn, user_id=user, months=[month, *invoiced])
                invoice = {"number": view.number, "month": str(view.month), "total_usd": view.total_usd}
                await outbox.enqueue(
                    conn, type=EventType.INVOICE_FINALIZED, user_id=user, data={"invoice": invoice}, now=now
                )
                finalized.append(view)
    return finalized
