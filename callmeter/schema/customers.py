"""GraphQL types of customers: their billing time zone (and, with spend control, their balance)."""

from __future__ import annotations

import strawberry

from callmeter.rows import CustomerRow


@strawberry.type
class TimezoneChange:
    from_month: str
    timezone: str


@strawberry.type(description="A billed user: the billing time zone their months follow.")
class Customer:
    user_id: strawberry.ID
    billing_timezone: str = strawberry.field(description="The IANA zone in force now.")
    timezone_schedule: list[TimezoneChange] = strawberry.field(
        description="Every zone and the month it is in force from, oldest first (scheduled ones too)."
    )

    @classmethod
    def from_row(cls, row: CustomerRow) -> Customer:
        return cls(
            user_id=strawberry.ID(str(row.user_id)),
            billing_timezone=row.calendar.timezone_now(),
            timezone_schedule=[
                TimezoneChange(from_month=str(start), timezone=name) for start, name in row.calendar.zones
            ],
        )
