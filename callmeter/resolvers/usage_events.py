"""Usage events from the agent (LLM tokens, TTS characters, STT seconds, ...): checked whole, then
stored and billed in one transaction (db/meters.py), announced to live subscribers after commit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from callmeter.billing.meters import MeterError, check_meter_name, parse_quantity
from callmeter.call_lifecycle import CALL_SID, CallEventKind
from callmeter.db import customers, meters
from callmeter.db.live import LiveEvent
from callmeter.db.locks import lock_user_billing
from callmeter.errors import BadInputError, ConflictError
from callmeter.inputs import is_one_line
from callmeter.resolvers.services import Services

MAX_EVENTS = 500
MAX_KEY_LENGTH = 200
OLDEST_DAYS = 400  # a little over a year back: late reports of last year's calls still count
MAX_ANNOUNCED_CALLS = 100  # live updates per request; subscribers re-read whole lists anyway
FIELDS = {"idempotency_key", "call_sid", "meter", "quantity", "occurred_at"}


def parse_event(raw: object, index: int, sids: set[str], names: set[str], now: datetime) -> meters.UsageEvent:
    """One event; `sids`, `names`: call sids and meter names of the batch found good already (a
    batch repeats them), so each is checked once."""
    where = f"events[{index}]"
    if not isinstance(raw, dict):
        raise BadInputError(f"{where} must be an object")
    if not FIELDS.issuperset(raw):
        unknown = sorted(map(str, set(raw) - FIELDS))
        raise BadInputError(f"{where} has unknown fields: {', '.join(unknown)[:200]}")
    key = raw.get("idempotency_key")
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH or not is_one_line(key):
        raise BadInputError(f"{where}.idempotency_key must be 1 to {MAX_KEY_LENGTH} characters on one line")
    call_sid, meter = raw.get("call_sid"), raw.get("meter")
    if call_sid is not None and not (isinstance(call_sid, str) and call_sid in sids):
        if not isinstance(call_sid, str) or not CALL_SID.fullmatch(call_sid):
            raise BadInputError(
                f"{where}.call_sid must be a Twilio CallSid (1 to 64 letters, digits, _ or -)"
            )
        sids.add(call_sid)
    try:
        if not (isinstance(meter, str) and meter in names):
            names.add(check_meter_name(meter))  # type: ignore[arg-type]
        quantity = parse_quantity(raw.get("quantity"))
    except MeterError as exc:
        raise BadInputError(f"{where}.{exc}") from None
    instant = _instant(raw.get("occurred_at"), where, now)
    return meters.UsageEvent(key, call_sid, meter, quantity, instant)  # type: ignore[arg-type]


def _instant(value: object, where: str, now: datetime) -> datetime:
    """An ISO 8601 instant with its offset, at most OLDEST_DAYS old and a day ahead: an event
    without a call counts in the month it names, and an agent's clock at 1970 or 2999 would bill a
    month nobody invoices (or draw a prepaid balance for it now)."""
    if not isinstance(value, str):
        raise BadInputError(f"{where}.occurred_at is required: an ISO 8601 time with its offset")
    try:
        instant = datetime.fromisoformat(value)
        if instant.tzinfo is None:
            raise ValueError("no offset")
        instant = instant.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadInputError(
            f"{where}.occurred_at must be an ISO 8601 time with its offset, got {value[:40]!r}"
        ) from None
    if not now - timedelta(days=OLDEST_DAYS) <= instant <= now + timedelta(days=1):
        raise BadInputError(
            f"{where}.occurred_at must be within the last {OLDEST_DAYS} days (and at most a day ahead), "
            f"got {value[:40]!r}"
        )
    return instant


def parse_events(raw: object, now: datetime) -> tuple[list[meters.UsageEvent], int]:
    """The events of a request, each key once, and how many repeated a key of the same request; a
    key repeated with other values is a ConflictError."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_EVENTS:
        raise BadInputError(f'the body must be JSON like {{"events": [...]}} with 1 to {MAX_EVENTS} events')
    unique: dict[str, meters.UsageEvent] = {}
    sids: set[str] = set()
    names: set[str] = set()
    for index, item in enumerate(raw):
        event = parse_event(item, index, sids, names, now)
        seen = unique.get(event.key)
        if seen is not None and not seen.same_as(event):
            raise ConflictError(f"idempotency_key {event.key[:60]!r} is given twice with other values")
        unique.setdefault(event.key, event)
    return list(unique.values()), len(raw) - len(unique)


async def record_usage_events(services: Services, *, user_id: int, raw: object) -> tuple[int, int]:
    """Store and bill a batch; (accepted, duplicates). All or nothing."""
    now = datetime.now(UTC)
    events, repeated = parse_events(raw, now)
    announced: list[LiveEvent] = []
    async with services.db.transaction() as conn:
        # The billing lock before the customer's row, as plan changes and grants take them.
        await lock_user_billing(conn, user_id=user_id)
        await customers.ensure_customer(conn, user_id=user_id, calendar=services.settings.default_calendar)
        try:
            result = await meters.store_events(
                conn, user_id=user_id, events=events, default_plan=services.default_plan, now=now
            )
        except meters.EventConflictError as exc:
            raise ConflictError(str(exc)) from None
        except MeterError as exc:  # a month's charge past what it may hold
            raise BadInputError(str(exc)) from None
        billed = result.billed
        announced = [
            LiveEvent(user_id, 0, CallEventKind.UPDATED, month, 0) for month in sorted(billed.months)
        ]
        announced += [
            LiveEvent(user_id, call_id, CallEventKind.UPDATED, None, 0)
            for call_id in sorted(billed.call_ids)[:MAX_ANNOUNCED_CALLS]
        ]
        await services.bus.announce_many(conn, announced)
    for event in announced:
        services.bus.committed(event)
    return result.accepted, result.duplicates + repeated
