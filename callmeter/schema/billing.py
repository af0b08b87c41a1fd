"""GraphQL types of the pricing plans and invoices."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

import strawberry

from callmeter.billing import invoices as billing_invoices
from callmeter.billing import plans as billing_plans

PlanKind = strawberry.enum(billing_plans.PlanKind, name="PlanKind")
InvoiceStatus = strawberry.enum(billing_invoices.InvoiceStatus, name="InvoiceStatus")


@strawberry.type
class Tier:
    up_to_minutes: int | None
    rate_per_minute: Decimal


@strawberry.type
class MeterRate:
    meter: str
    unit_size: Decimal
    rate_per_unit: Decimal


@strawberry.type
class Plan:
    id: strawberry.ID  # DEFAULT_PLAN_ID for the PRICE_PER_MINUTE plan, which is not stored
    name: str
    kind: PlanKind
    rate_per_minute: Decimal | None
    tiers: list[Tier]
    monthly_fee_usd: Decimal
    included_minutes: int
    overage_rate_per_minute: Decimal | None
    billing_increment_seconds: int
    minimum_billable_seconds: int
    meter_rates: list[MeterRate] = strawberry.field(
        description="What usage events of each meter cost: ratePerUnit per unitSize units."
    )

    @classmethod
    def from_value(cls, plan: billing_plans.Plan) -> Plan:
        return cls(
            id=strawberry.ID(str(plan.id) if plan.id is not None else billing_plans.DEFAULT_PLAN_ID),
            name=plan.name,
            kind=plan.kind,
            rate_per_minute=plan.rate_per_minute,
            tiers=[
                Tier(up_to_minutes=tier.up_to_minutes, rate_per_minute=tier.rate_per_minute)
                for tier in plan.tiers
            ],
            monthly_fee_usd=billing_plans.fixed_fee(plan) if plan.monthly_fee_usd else Decimal("0.00"),
            included_minutes=plan.included_minutes,
            overage_rate_per_minute=plan.overage_rate_per_minute,
            billing_increment_seconds=plan.billing_increment_seconds,
            minimum_billable_seconds=plan.minimum_billable_seconds,
            meter_rates=[
                MeterRate(meter=rate.meter, unit_size=rate.unit_size, rate_per_unit=rate.rate_per_unit)
                for rate in plan.meter_rates
            ],
        )


@strawberry.input
class MeterRateInput:
    meter: str
    unit_size: Decimal | None = Decimal(1)
    rate_per_unit: Decimal


@strawberry.input
class TierInput:
    up_to_minutes: int | None
    rate_per_minute: Decimal


@strawberry.input
class PlanInput:
    name: str
    kind: PlanKind
    rate_per_minute: Decimal | None = None
    tiers: list[TierInput] | None = None
    monthly_fee_usd: Decimal | None = None
    included_minutes: int | None = None
    overage_rate_per_minute: Decimal | None = None
    billing_increment_seconds: int | None = 1  # null: the default, as API.md's `Int = 1`
    minimum_billable_seconds: int | None = 0
    meter_rates: list[MeterRateInput] | None = None


@strawberry.type
class InvoiceLine:
    position: int
    description: str
    quantity: Decimal
    unit_price_usd: Decimal
    amount_usd: Decimal

    @classmethod
    def from_value(cls, line: billing_invoices.InvoiceLine) -> InvoiceLine:
        return cls(**asdict(line))


@strawberry.type
class Invoice:
    number: str | None
    month: str
    status: InvoiceStatus
    lines: list[InvoiceLine]
    total_usd: Decimal
    stripe_invoice_id: str | None
    pdf_url: str | None

    @classmethod
    def from_view(cls, view: billing_invoices.InvoiceView, *, viewer_user_id: int) -> Invoice:
        query = "" if view.user_id == viewer_user_id else f"?user_id={view.user_id}"
        return cls(
            number=view.number,
            month=str(view.month),
            status=view.status,
            lines=[InvoiceLine.from_value(line) for line in view.lines],
            total_usd=view.total_usd,
            stripe_invoice_id=view.stripe_invoice_id,
            pdf_url=f"/api/invoices/{view.month}.pdf{query}",
        )
