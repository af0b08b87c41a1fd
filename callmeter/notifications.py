"""What callmeter tells the operator's systems: the outgoing webhook event types and their bodies.

One vocabulary for the outbox (db/outbox.py), the sender (workers/deliveries.py), the API and the
CLI. A body is `{"id": "evt_...", "type": ..., "created_at": ISO 8601 UTC, "data": {...}}` and `data`
always has `user_id` as a string. The call object is the REST one (rest/shapes.py uses this shape).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from callmeter.billing.usage import MonthSummary
from callmeter.rows import CallRow


class EventType(StrEnum):
    USAGE_THRESHOLD_REACHED = "usage.threshold_reached"
    BALANCE_LOW = "balance.low"
    BALANCE_EXHAUSTED = "balance.exhausted"
    SPEND_CAP_REACHED = "spend_cap.reached"
    CALL_COMPLETED = "call.completed"
    CALL_TERMINATED = "call.terminated"
    INVOICE_FINALIZED = "invoice.finalized"


def new_event_id() -> str:
    return f"evt_{secrets.token_hex(12)}"


def rest_time(moment: datetime | None) -> str | None:
    """A time as the REST routes show it: UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else None


def call_object(call: CallRow) -> dict[str, object]:
    """The REST call object."""
    return {
        "id": call.id,
        "agent_name": call.agent_name,
        "call_from": call.call_from,
        "call_to": call.call_to,
        "duration_seconds": call.duration_seconds,
        "cost_usd": call.cost_usd,
        "total_cost_usd": call.total_cost_usd,
        "started_at": rest_time(call.started_at),
        "ended_at": rest_time(call.ended_at),
        "status": str(call.status),
    }


def usage_object(summary: MonthSummary) -> dict[str, object]:
    """The REST usage object of a month."""
    return {
        "month": str(summary.month),
        "total_calls": summary.total_calls,
        "total_minutes": summary.total_minutes,
        "total_cost_usd": summary.total_cost_usd,
    }


def call_data(call: CallRow) -> dict[str, object]:
    data: dict[str, object] = {"call": {**call_object(call), "call_sid": call.call_sid}}
    if call.terminated_reason:
        data["reason"] = call.terminated_reason
    return data


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def event_body(*, event_id: str, type: EventType, user_id: int, data: dict[str, Any], at: datetime) -> str:
    """The exact JSON text that is stored, signed and sent."""
    body = {
        "id": event_id,
        "type": str(type),
        "created_at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": {"user_id": str(user_id), **data},
    }
    return json.dumps(body, default=_json_default, separators=(",", ":"))
