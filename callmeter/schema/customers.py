"""GraphQL types of customers: their billing time zone, prepaid balance and limits, credit grants,
and the allowance the call gate gives."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from callmeter.billing.allowance import Allowance
from callmeter.billing.limits import Limits as LimitsValue
from callmeter.resolvers import spend
from callmeter.rows import CreditGrantRow, CustomerRow
from callmeter.schema.context import Info


@strawberry.type
class TimezoneChange:
    from_month: str
    timezone: str


@strawberry.type(description="A customer's limits; null is no limit.")
class Limits:
    monthly_spend_cap_usd: Decimal | None
    max_concurrent_calls: int | None
    enforce: bool
    low_balance_usd: Decimal | None

    @classmethod
    def from_value(cls, limits: LimitsValue) -> Limits:
        return cls(
            monthly_spend_cap_usd=limits.monthly_spend_cap_usd,
            max_concurrent_calls=limits.max_concurrent_calls,
            enforce=limits.enforce,
            low_balance_usd=limits.low_balance_usd,
        )


@strawberry.input(description="All of a customer's limits: a field left out is null (no limit).")
class LimitsInput:
    monthly_spend_cap_usd: Decimal | None = None
    max_concurrent_calls: int | None = None
    enforce: bool | None = False
    low_balance_usd: Decimal | None = None

    def to_value(self) -> LimitsValue:
        return LimitsValue(
            monthly_spend_cap_usd=self.monthly_spend_cap_usd,
            max_concurrent_calls=self.max_concurrent_calls,
            enforce=bool(self.enforce),
            low_balance_usd=self.low_balance_usd,
        )


@strawberry.type(description="A billed user: their billing time zone, prepaid balance and limits.")
class Customer:
    user_id: strawberry.ID
    billing_timezone: str = strawberry.field(description="The IANA zone in force now.")
    timezone_schedule: list[TimezoneChange] = strawberry.field(
        description="Every zone and the month it is in force from, oldest first (scheduled ones too)."
    )
    balance_usd: Decimal | None = strawberry.field(
        description="Grants less charges since the first grant; null until then (postpaid)."
    )
    limits: Limits

    @strawberry.field(
        description="The balance less the running cost of calls in progress; null when postpaid."
    )
    async def available_usd(self, info: Info) -> Decimal | None:
        if self.balance_usd is None:
            return None
        state = await spend.customer_state(info.context.services, user_id=int(self.user_id))
        return state.available_usd

    @classmethod
    def from_row(cls, row: CustomerRow) -> Customer:
        return cls(
            user_id=strawberry.ID(str(row.user_id)),
            billing_timezone=row.calendar.timezone_now(),
            timezone_schedule=[
                TimezoneChange(from_month=str(start), timezone=name) for start, name in row.calendar.zones
            ],
            balance_usd=row.balance_usd,
            limits=Limits.from_value(row.limits),
        )


@strawberry.type
class CreditGrant:
    id: strawberry.ID
    amount_usd: Decimal
    description: str | None
    created_at: datetime
    balance_after_usd: Decimal

    @classmethod
    def from_row(cls, row: CreditGrantRow) -> CreditGrant:
        return cls(
            id=strawberry.ID(str(row.id)),
            amount_usd=row.amount_usd,
            description=row.description,
            created_at=row.created_at,
            balance_after_usd=row.balance_after_usd,
        )


@strawberry.type(description="Whether a call of an agent may start now (read-only: holds no slot).")
class CallAllowance:
    allowed: bool
    reason: str | None = strawberry.field(
        description="balance_exhausted, spend_cap_reached or concurrency_limit: the first that applies."
    )
    authorization_id: str | None
    max_duration_seconds: int | None
    available_usd: Decimal | None
    active_calls: int

    @classmethod
    def from_value(cls, allowance: Allowance, authorization_id: str | None = None) -> CallAllowance:
        return cls(
            allowed=allowance.allowed,
            reason=allowance.reason.value if allowance.reason else None,
            authorization_id=authorization_id,
            max_duration_seconds=allowance.max_duration_seconds,
            available_usd=allowance.available_usd,
            active_calls=allowance.active_calls,
        )
