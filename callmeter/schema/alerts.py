"""GraphQL types of usage alerts."""

from __future__ import annotations

from decimal import Decimal

import strawberry

from callmeter.billing import alerts as billing_alerts
from callmeter.rows import AlertRow

AlertMetric = strawberry.enum(billing_alerts.AlertMetric, name="AlertMetric")


@strawberry.input
class UsageAlertInput:
    user_id: strawberry.ID
    metric: AlertMetric
    threshold: Decimal
    name: str | None = None


@strawberry.type
class UsageAlert:
    id: strawberry.ID
    metric: AlertMetric
    threshold: Decimal
    name: str | None
    last_fired_month: str | None

    @classmethod
    def from_row(cls, row: AlertRow) -> UsageAlert:
        return cls(
            id=strawberry.ID(str(row.id)),
            metric=billing_alerts.AlertMetric(row.metric),
            threshold=row.threshold,
            name=row.name,
            last_fired_month=row.last_fired_month,
        )
