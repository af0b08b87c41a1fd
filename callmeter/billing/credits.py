"""Prepaid credits: what a grant may be, what a change of a month draws from the balance, and what an
invoice applies of the credit. Pure.

From a customer's first grant on, every change of a month's total cost (fixed fee and usage charge)
is charged to the balance the moment it is recorded: `balance = grants - charges` exactly. What a
month had cost before the first grant (its `base`) is not charged. An invoice applies credit to what
was charged for its months since their last invoice, never more than those charges and never more
than the credit not yet applied to earlier invoices.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from callmeter.billing.money import CENT

MAX_GRANT_USD = Decimal(10_000_000)
MAX_KEY_LENGTH = 200
CREDITS_APPLIED = "Prepaid credits applied"


class CreditError(ValueError):
    pass


class LedgerKind(StrEnum):
    """What a ledger entry records: a grant adds to the balance, the others draw it down."""

    GRANT = "grant"
    CALL = "call"  # a completed call's cost (and the month's fixed fee with its first call)
    FEE = "fee"  # a month's fixed fee, charged when its invoice is finalized without calls
    ADJUSTMENT = "adjustment"  # a change of a month's total by a plan change (re-rating)
    METER = "meter"  # usage events' cost (LLM tokens, TTS characters, ...)


def check_grant(amount: Decimal, key: str) -> None:
    if not amount.is_finite() or amount <= 0:
        raise CreditError(f"amountUsd must be a positive amount, got {amount}")
    if amount > MAX_GRANT_USD:  # before quantize, which cannot hold 1e30 to the cent
        raise CreditError(f"amountUsd must be at most {MAX_GRANT_USD} per grant")
    if amount != amount.quantize(CENT):
        raise CreditError(f"amountUsd must be whole cents, e.g. 25.00, got {amount}")
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise CreditError(f"idempotencyKey must be 1 to {MAX_KEY_LENGTH} printable characters")


@dataclass(frozen=True)
class MonthDraw:
    """How much of a month's total cost is charged to the balance so far."""

    base_usd: Decimal | None  # what the month cost before the first grant; None: postpaid
    drawn_usd: Decimal

    def due(self, total_cost_usd: Decimal) -> Decimal:
        """What the month's total cost now still has to draw from the balance (negative: refund)."""
        if self.base_usd is None:
            return Decimal("0.00")
        return total_cost_usd - self.base_usd - self.drawn_usd


def credits_applied(
    *, charged_usd: Decimal, invoice_charges_usd: Decimal, credit_left_usd: Decimal
) -> Decimal:
    """The credit an invoice applies: what was charged to the balance for its months since their
    last invoice, at most the invoice's charges and the credit left. A refund to the balance
    (negative) takes back the same share of the invoice's negative charges."""
    if charged_usd >= 0:
        return max(Decimal("0.00"), min(charged_usd, invoice_charges_usd, credit_left_usd))
    return min(Decimal("0.00"), max(charged_usd, invoice_charges_usd))
