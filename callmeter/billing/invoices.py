"""Invoice lines: the fixed fee, usage by tier, each priced meter, and adjustments for earlier
months. Pure.

Line amounts are in cents and add up exactly to the invoice total: where one charge is split over
several lines (usage by tier), the cumulative sums are rounded and each line is the difference.
Quantities (minutes, or 1 for the fee and adjustments) always have four decimal places.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from callmeter.billing.adjustments import Adjustment, BilledUsage, billed_now
from callmeter.billing.credits import CREDITS_APPLIED, credits_applied
from callmeter.billing.meters import MeterTotal, meter_lines
from callmeter.billing.money import EXACT, format_usd, per_minute, round_cents
from callmeter.billing.plans import (
    Plan,
    PlanKind,
    fixed_fee,
    overage_seconds,
    tier_spans,
    usage_charge,
    volume_tier,
)
from callmeter.billing.usage import MonthTotals
from callmeter.months import Month

QUANTITY_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class InvoiceLine:
    position: int
    description: str
    quantity: Decimal
    unit_price_usd: Decimal
    amount_usd: Decimal


class InvoiceStatus(StrEnum):
    DRAFT = "DRAFT"
    FINALIZED = "FINALIZED"


@dataclass(frozen=True)
class InvoiceView:
    """An invoice as it is shown: a finalized one as stored, or a live draft."""

    user_id: int
    month: Month
    status: InvoiceStatus
    number: str | None
    lines: tuple[InvoiceLine, ...]
    total_usd: Decimal
    stripe_invoice_id: str | None = None
    id: int | None = None  # a finalized invoice's


@dataclass(frozen=True)
class Draft:
    """A live draft and what finalizing it would record."""

    view: InvoiceView
    plan: Plan
    billed: BilledUsage
    usage_charge_usd: Decimal
    adjustments: tuple[Adjustment, ...]
    credits_applied_usd: Decimal = Decimal("0.00")

    @property
    def owes_nothing(self) -> bool:
        charges = self.view.total_usd + self.credits_applied_usd
        return self.billed.calls == 0 and not self.adjustments and charges == 0


def minutes(seconds: int) -> Decimal:
    return EXACT.divide(Decimal(seconds), Decimal(60)).quantize(QUANTITY_PLACES)


def line_quantity(quantity: Decimal) -> Decimal:
    """A quantity as lines show it, drafted or stored (the column keeps more places)."""
    return quantity.quantize(QUANTITY_PLACES, context=EXACT)


def _rate(rate: Decimal) -> str:
    return f"{format_usd(rate, places=max(2, -int(rate.normalize().as_tuple().exponent)))}/min"


def _bound(tier_start: int, up_to: int | None) -> str:
    return f"{tier_start // 60}+ min" if up_to is None else f"{tier_start // 60}–{up_to} min"


def usage_lines(plan: Plan, billable_seconds: int) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """(description, minutes, unit price, amount) per part of the usage charge; amounts sum to it."""
    parts: list[tuple[str, int, Decimal, Decimal]] = []  # description, seconds, rate, exact amount
    if plan.kind is PlanKind.PAY_AS_YOU_GO:
        rate = plan.rate_per_minute or Decimal(0)
        parts.append((f"Usage at {_rate(rate)}", billable_seconds, rate, per_minute(rate, billable_seconds)))
    elif plan.kind is PlanKind.GRADUATED:
        for start, span, tier in tier_spans(plan.tiers, billable_seconds):
            parts.append(
                (
                    f"Usage {_bound(start, tier.up_to_minutes)} at {_rate(tier.rate_per_minute)}",
                    span,
                    tier.rate_per_minute,
                    per_minute(tier.rate_per_minute, span),
                )
            )
    elif plan.kind is PlanKind.VOLUME:
        tier = volume_tier(plan.tiers, billable_seconds)
        parts.append(
            (
                f"Usage at {_rate(tier.rate_per_minute)} (volume tier)",
                billable_seconds,
                tier.rate_per_minute,
                per_minute(tier.rate_per_minute, billable_seconds),
            )
        )
    else:
        rate = plan.overage_rate_per_minute or Decimal(0)
        over = overage_seconds(plan, billable_seconds)
        if over:
            parts.append(
                (
                    f"Overage beyond {plan.included_minutes} included min at {_rate(rate)}",
                    over,
                    rate,
                    per_minute(rate, over),
                )
            )
    lines, exact_sum, billed = [], Decimal(0), Decimal("0.00")
    for description, seconds, rate, exact in parts:
        exact_sum = EXACT.add(exact_sum, exact)
        amount = round_cents(exact_sum) - billed
        billed += amount
        lines.append((description, minutes(seconds), rate, amount))
    assert billed == usage_charge(plan, billable_seconds)
    return lines


def build_invoice_lines(
    plan: Plan,
    *,
    month: Month,
    billable_seconds: int,
    adjustments: Sequence[Adjustment] = (),
    meters: Sequence[MeterTotal] = (),
) -> list[InvoiceLine]:
    rows: list[tuple[str, Decimal, Decimal, Decimal]] = []
    if plan.kind is PlanKind.SUBSCRIPTION:
        fee = fixed_fee(plan)
        rows.append(
            (
                f"Monthly subscription ({plan.name}) for {month}, includes {plan.included_minutes} min",
                line_quantity(Decimal(1)),
                fee,
                fee,
            )
        )
    usage = [row for row in usage_lines(plan, billable_seconds) if row[3] or row[1]]
    if not usage and not rows:
        usage = [
            (f"Usage for {month}", Decimal("0.0000"), plan.rate_per_minute or Decimal(0), Decimal("0.00"))
        ]
    rows += usage
    rows += [
        (description, line_quantity(units), rate, amount)
        for description, units, rate, amount in meter_lines(plan.meter_rates, meters)
    ]
    for adjustment in adjustments:
        rows.append(
            (
                f"Adjustment for {adjustment.month}: {adjustment.description}",
                line_quantity(Decimal(1)),
                adjustment.amount_usd,
                adjustment.amount_usd,
            )
        )
    return [
        InvoiceLine(position, description, quantity, unit_price, amount)
        for position, (description, quantity, unit_price, amount) in enumerate(rows, start=1)
    ]


def invoice_total(lines: Sequence[InvoiceLine]) -> Decimal:
    return sum((line.amount_usd for line in lines), start=Decimal("0.00"))


@dataclass(frozen=True)
class Credit:
    """A prepaid customer's credit as an invoice sees it (billing/credits.py)."""

    charged_usd: Decimal  # what the invoice's months charged to the balance since their last invoice
    left_usd: Decimal  # credit granted and not applied to an earlier invoice


def draft_invoice(
    totals: MonthTotals,
    plan: Plan,
    pending: Sequence[Adjustment],
    credit: Credit | None = None,
    *,
    meters: Sequence[MeterTotal] = (),
) -> Draft:
    """The live draft of the month of `totals`, carrying the pending adjustments of earlier months,
    and for a prepaid customer the credit it applies; a line per priced meter used."""
    lines = build_invoice_lines(
        plan,
        month=totals.month,
        billable_seconds=totals.billable_seconds,
        adjustments=pending,
        meters=meters,
    )
    applied = Decimal("0.00")
    if credit is not None:
        applied = credits_applied(
            charged_usd=credit.charged_usd,
            invoice_charges_usd=invoice_total(lines),
            credit_left_usd=credit.left_usd,
        )
    if applied:
        quantity = line_quantity(Decimal(1))
        lines.append(InvoiceLine(len(lines) + 1, CREDITS_APPLIED, quantity, -applied, -applied))
    view = InvoiceView(
        totals.user_id, totals.month, InvoiceStatus.DRAFT, None, tuple(lines), invoice_total(lines)
    )
    return Draft(view, plan, billed_now(totals, plan), totals.usage_charge_usd, tuple(pending), applied)
