"""Prepaid credits and limits: granting credit (once per idempotency key) and setting a customer's
limits. Admin only; the rules are billing/credits.py's and billing/limits.py's."""

from __future__ import annotations

from decimal import Decimal

from callmeter.billing.credits import CreditError, check_grant
from callmeter.billing.limits import LimitError, Limits, check_limits
from callmeter.billing.plans import fixed_fee, plan_in_force
from callmeter.db import credits, customers, plans, usage
from callmeter.db.locks import lock_user_billing
from callmeter.errors import BadInputError
from callmeter.inputs import is_one_line
from callmeter.resolvers.services import Services
from callmeter.rows import CreditGrantRow, CustomerRow

MAX_DESCRIPTION = 500


async def grant_credits(
    services: Services, *, user_id: int, amount: Decimal, key: str, description: str | None
) -> CreditGrantRow:
    """Add `amount` to the customer's balance once per `key`: the same key again returns the first
    grant; with another amount it is bad input. The first grant makes the customer prepaid: what
    their months cost until then is not charged to the balance."""
    try:
        check_grant(amount, key)
    except CreditError as exc:
        raise BadInputError(str(exc)) from None
    if description is not None and (len(description) > MAX_DESCRIPTION or not is_one_line(description)):
        raise BadInputError(f"description must be one line of at most {MAX_DESCRIPTION} characters")
    async with services.db.transaction() as conn:
        await lock_user_billing(conn, user_id=user_id)
        customer = await customers.ensure_customer(
            conn, user_id=user_id, calendar=services.settings.default_calendar, lock=True
        )
        found = await credits.find_grant(conn, user_id=user_id, key=key)
        if found is not None:
            if found.amount_usd != amount:
                raise BadInputError(
                    f"idempotencyKey {key[:40]!r} was used for a grant of {found.amount_usd}, not {amount}"
                )
            return found
        if customer.balance_usd is None:
            schedule = await plans.plan_schedule(conn, user_id=user_id)
            months = await usage.fetch_months(conn, user_id=user_id)
            bases = {
                totals.month: fixed_fee(plan_in_force(schedule, totals.month, services.default_plan))
                + totals.usage_charge_usd
                for totals in months
            }
            await credits.start_prepaid(conn, user_id=user_id, bases=bases)
        return await credits.add_grant(
            conn,
            customer=customer,
            amount=amount,
            key=key,
            description=description,
            default_plan=services.default_plan,
        )


async def set_limits(services: Services, *, user_id: int, limits: Limits) -> CustomerRow:
    """Replace all of the customer's limits."""
    try:
        check_limits(limits)
    except LimitError as exc:
        raise BadInputError(str(exc)) from None
    async with services.db.transaction() as conn:
        await customers.ensure_customer(
            conn, user_id=user_id, calendar=services.settings.default_calendar, lock=True
        )
        await customers.save_limits(conn, user_id=user_id, limits=limits)
        found = await customers.fetch_customer(conn, user_id=user_id)
    assert found is not None
    return found
