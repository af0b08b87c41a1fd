"""The rows the database hands back: frozen values, defined outside `db/` so that the schema, the
REST routes and the CLI can take them without importing the data layer. `db/` builds them from the
driver's records; money and months here are `Decimal` and `Month` already."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from callmeter.billing.limits import NO_LIMITS, Limits
from callmeter.billing.meters import MeterTotal, telephony
from callmeter.call_lifecycle import CallStatus
from callmeter.months import Calendar, Month


@dataclass(frozen=True)
class AgentRow:
    id: int
    user_id: int
    name: str
    phone_numbers: tuple[str, ...]
    voice_url: str | None = None  # where the voice gate sends an allowed call


@dataclass(frozen=True)
class CallRow:
    id: int
    call_sid: str
    user_id: int
    agent_id: int | None
    agent_name: str | None
    call_from: str | None
    call_to: str | None
    direction: str | None
    status: CallStatus
    twilio_status: str
    duration_seconds: int
    billable_seconds: int
    cost_usd: Decimal
    first_event_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    sort_at: datetime
    month: Month
    stale_at: datetime | None = None
    terminated_reason: str | None = None  # why spend control ended it
    meters: tuple[MeterTotal, ...] = ()  # its billed usage events by meter, when read with them

    @property
    def cost_breakdown(self) -> list[MeterTotal]:
        """Its minutes (`telephony_minutes`, at `cost_usd`), then each meter by name."""
        return [telephony(self.billable_seconds, self.cost_usd), *self.meters]

    @property
    def total_cost_usd(self) -> Decimal:
        return self.cost_usd + sum((meter.charge_usd for meter in self.meters), start=Decimal("0.00"))


@dataclass(frozen=True)
class WebhookEventRow:
    id: int
    call_sid: str
    sequence_number: int | None
    call_status: str
    event_at: datetime
    received_at: datetime
    payload: dict[str, str]


@dataclass(frozen=True)
class AgentUsageRow:
    """One agent's completed calls in a month (agent None: calls whose agent is gone)."""

    agent_id: int | None
    agent_name: str | None
    total_calls: int
    total_seconds: int
    total_cost_usd: Decimal


@dataclass(frozen=True)
class CustomerRow:
    """A billed user: their billing calendar (the zone in force for each month), their prepaid
    balance (None: postpaid, no grant yet) and their spending limits."""

    user_id: int
    calendar: Calendar
    balance_usd: Decimal | None = None
    limits: Limits = NO_LIMITS
    exhausted: bool = False  # balance.exhausted was sent and it has not been refilled since
    cap_reached_month: str | None = None  # the last month spend_cap.reached was sent for

    def cap_reached_sent(self, month: Month | str) -> bool:
        """Whether spend_cap.reached was sent for this month or a later one ("YYYY-MM" sorts by time):
        never again for a month the event has moved past, as around a month's end."""
        return self.cap_reached_month is not None and self.cap_reached_month >= str(month)


@dataclass(frozen=True)
class CreditGrantRow:
    id: int
    user_id: int
    amount_usd: Decimal
    description: str | None
    created_at: datetime
    balance_after_usd: Decimal


@dataclass(frozen=True)
class EndpointRow:
    """A webhook endpoint (its secret stays sealed here)."""

    id: int
    url: str
    events: tuple[str, ...]
    description: str | None
    disabled: bool
    sealed_secret: str


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    event_id: str
    event_type: str
    attempts: int
    status: str
    last_status_code: int | None
    next_attempt_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class AlertRow:
    id: int
    user_id: int
    metric: str
    threshold: Decimal
    name: str | None
    last_fired_month: str | None
