"""`credit_ledger` and the balance it keeps on `customers`: grants, and the charges that draw it down.

Every write here runs under the user's billing lock (`locks.lock_user_billing`, in the caller's
transaction), so the balance is read, changed in Python (exact `Decimal`: SQLite has no exact
arithmetic) and written back without interleaving, and the ledger row carries the balance after it.
Reading the balance is one row: `customers.balance_usd`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select

from callmeter.billing.credits import LedgerKind, MonthDraw
from callmeter.billing.plans import Plan
from callmeter.db import watch
from callmeter.db.connection import Connection
from callmeter.db.prepared import Prepared
from callmeter.db.tables import credit_ledger, customers, invoices, monthly_usage
from callmeter.db.types import to_decimal, to_utc
from callmeter.db.usage import month_draw
from callmeter.months import Month
from callmeter.rows import CreditGrantRow, CustomerRow

_BALANCE = Prepared(select(customers.c.balance_usd).where(customers.c.user_id == bindparam("user_id")))
_SET_BALANCE = Prepared(
    customers.update().where(customers.c.user_id == bindparam("key_user_id")), columns=("balance_usd",)
)
_LEDGER = Prepared(
    credit_ledger.insert().returning(credit_ledger.c.id),
    columns=(
        "user_id",
        "kind",
        "amount_usd",
        "balance_after_usd",
        "month",
        "call_id",
        "idempotency_key",
        "description",
        "created_at",
    ),
)
_DRAW = Prepared(
    select(monthly_usage.c.credit_base_usd, monthly_usage.c.drawn_usd).where(
        monthly_usage.c.user_id == bindparam("user_id"), monthly_usage.c.month == bindparam("month")
    )
)
_SET_DRAWN = Prepared(
    monthly_usage.update().where(
        monthly_usage.c.user_id == bindparam("key_user_id"), monthly_usage.c.month == bindparam("key_month")
    ),
    columns=("drawn_usd",),
)


async def fetch_balance(conn: Connection, *, user_id: int) -> Decimal | None:
    """The prepaid balance; None for a postpaid customer (or one never seen)."""
    value = await _BALANCE.fetch_val(conn, user_id=user_id)
    return None if value is None else to_decimal(value)


async def fetch_month_draw(conn: Connection, *, user_id: int, month: Month) -> MonthDraw:
    return month_draw(await _DRAW.fetch_one(conn, user_id=user_id, month=str(month)))


async def settle(
    conn: Connection,
    *,
    customer: CustomerRow,
    month: Month,
    total_cost_usd: Decimal,
    kind: LedgerKind,
    default_plan: Plan,
    draw: MonthDraw | None = None,
    call_id: int | None = None,
    description: str | None = None,
) -> CustomerRow:
    """Charge a prepaid `customer` (as read under their billing lock) what the month's total cost
    now still has to draw (negative: a refund), with a ledger entry and the balance events it
    causes; the customer after it. `draw`: the month's draw as the caller read it already."""
    balance = customer.balance_usd
    if balance is None:
        return customer
    draw = draw or await fetch_month_draw(conn, user_id=customer.user_id, month=month)
    due = draw.due(total_cost_usd)
    if not due:
        return customer
    after = balance - due
    user_id = customer.user_id
    await _SET_BALANCE.execute(conn, key_user_id=user_id, balance_usd=after)
    await _SET_DRAWN.execute(conn, key_user_id=user_id, key_month=str(month), drawn_usd=draw.drawn_usd + due)
    await _LEDGER.fetch_val(
        conn,
        user_id=user_id,
        kind=kind,
        amount_usd=-due,
        balance_after_usd=after,
        month=str(month),
        call_id=call_id,
        idempotency_key=None,
        description=description,
        created_at=datetime.now(UTC),
    )
    changed = replace(customer, balance_usd=after)
    return await watch.balance_changed(
        conn,
        customer=changed,
        before=balance,
        default_plan=default_plan,
        now=datetime.now(UTC),
        completing_call_id=call_id,
    )


def _grant(row: Mapping[str, Any]) -> CreditGrantRow:
    return CreditGrantRow(
        id=row["id"],
        user_id=row["user_id"],
        amount_usd=to_decimal(row["amount_usd"]),
        description=row["description"],
        created_at=to_utc(row["created_at"]),
        balance_after_usd=to_decimal(row["balance_after_usd"]),
    )


async def find_grant(conn: Connection, *, user_id: int, key: str) -> CreditGrantRow | None:
    row = await conn.fetch_one(
        select(credit_ledger).where(
            credit_ledger.c.user_id == user_id,
            credit_ledger.c.idempotency_key == key,
            credit_ledger.c.kind == LedgerKind.GRANT,
        )
    )
    return _grant(row) if row else None


async def start_prepaid(conn: Connection, *, user_id: int, bases: Mapping[Month, Decimal]) -> None:
    """Before the first grant: what each month costs now is not charged to the balance."""
    for month, base in bases.items():
        await conn.execute(
            monthly_usage.update()
            .where(monthly_usage.c.user_id == user_id, monthly_usage.c.month == str(month))
            .values(credit_base_usd=base, drawn_usd=Decimal(0), invoiced_drawn_usd=Decimal(0))
        )


async def add_grant(
    conn: Connection,
    *,
    customer: CustomerRow,
    amount: Decimal,
    key: str,
    description: str | None,
    default_plan: Plan,
) -> CreditGrantRow:
    user_id, balance = customer.user_id, customer.balance_usd
    after = (balance or Decimal(0)) + amount
    await _SET_BALANCE.execute(conn, key_user_id=user_id, balance_usd=after)
    await _LEDGER.fetch_val(
        conn,
        user_id=user_id,
        kind=LedgerKind.GRANT,
        amount_usd=amount,
        balance_after_usd=after,
        month=None,
        call_id=None,
        idempotency_key=key,
        description=description,
        created_at=datetime.now(UTC),
    )
    await watch.balance_changed(
        conn,
        customer=replace(customer, balance_usd=after),
        before=balance or Decimal(0),
        default_plan=default_plan,
        now=datetime.now(UTC),
    )
    found = await find_grant(conn, user_id=user_id, key=key)
    assert found is not None
    return found


async def ledger_sum(conn: Connection, *, user_id: int) -> Decimal:
    """Grants less charges, summed over the whole ledger (for checks; the balance is one row)."""
    rows = await conn.fetch_all(select(credit_ledger.c.amount_usd).where(credit_ledger.c.user_id == user_id))
    return sum((to_decimal(row["amount_usd"]) for row in rows), start=Decimal("0.00"))


async def credit_left(conn: Connection, *, user_id: int) -> Decimal:
    """Credit granted and not yet applied to an invoice."""
    granted = await conn.fetch_all(
        select(credit_ledger.c.amount_usd).where(
            credit_ledger.c.user_id == user_id, credit_ledger.c.kind == LedgerKind.GRANT
        )
    )
    applied = await conn.fetch_all(
        select(invoices.c.credits_applied_usd).where(invoices.c.user_id == user_id)
    )
    total = sum((to_decimal(row[0]) for row in granted), start=Decimal(0))
    return total - sum((to_decimal(row[0]) for row in applied), start=Decimal(0))


async def uninvoiced_draws(conn: Connection, *, user_id: int, months: list[Month]) -> dict[Month, MonthDraw]:
    """For each of `months` with usage stored: what it charged to the balance since its last invoice."""
    rows = await conn.fetch_all(
        select(monthly_usage).where(
            monthly_usage.c.user_id == user_id, monthly_usage.c.month.in_([str(m) for m in months])
        )
    )
    return {
        Month.stored(row["month"]): MonthDraw(
            None if row["credit_base_usd"] is None else to_decimal(row["credit_base_usd"]),
            to_decimal(row["drawn_usd"]) - to_decimal(row["invoiced_drawn_usd"]),
        )
        for row in rows
    }


async def mark_invoiced(conn: Connection, *, user_id: int, months: list[Month]) -> None:
    await conn.execute(
        monthly_usage.update()
        .where(monthly_usage.c.user_id == user_id, monthly_usage.c.month.in_([str(m) for m in months]))
        .values(invoiced_drawn_usd=monthly_usage.c.drawn_usd)
    )
