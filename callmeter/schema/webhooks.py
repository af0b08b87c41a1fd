"""GraphQL types of outgoing webhooks: endpoints (the secret only when created) and deliveries."""

from __future__ import annotations

from datetime import datetime

import strawberry

from callmeter.rows import DeliveryRow, EndpointRow


@strawberry.input
class WebhookEndpointInput:
    url: str
    events: list[str]
    description: str | None = None


@strawberry.type
class WebhookEndpoint:
    id: strawberry.ID
    url: str
    events: list[str]
    description: str | None
    secret: str | None = strawberry.field(description="The whsec_ signing secret: only when created.")
    disabled: bool

    @classmethod
    def from_row(cls, row: EndpointRow, secret: str | None = None) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(str(row.id)),
            url=row.url,
            events=list(row.events),
            description=row.description,
            secret=secret,
            disabled=row.disabled,
        )


@strawberry.type
class WebhookDelivery:
    id: strawberry.ID
    event_id: str
    event_type: str
    attempts: int
    status: str = strawberry.field(description="pending, succeeded or failed")
    last_status_code: int | None
    next_attempt_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: DeliveryRow) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(str(row.id)),
            event_id=row.event_id,
            event_type=row.event_type,
            attempts=row.attempts,
            status=row.status,
            last_status_code=row.last_status_code,
            next_attempt_at=row.next_attempt_at,
            created_at=row.created_at,
        )
