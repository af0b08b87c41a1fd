"""Turning the form of a Twilio status callback into a `StatusCallback`, or a clear 400."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from callmeter.call_lifecycle import CALL_SID, TWILIO_STATUSES, StatusCallback
from callmeter.errors import BadInputError
from callmeter.inputs import digits

_MAX_FIELD = 256


def parse_status_callback(form: Mapping[str, str], *, received_at: datetime) -> StatusCallback:
    # The whole form is kept for audit, and PostgreSQL cannot store a NUL character in text.
    if any("\x00" in key or "\x00" in value for key, value in form.items()):
        raise BadInputError("not a Twilio status callback: a field contains a NUL character")
    call_sid = form.get("CallSid", "")
    if not CALL_SID.match(call_sid):
        raise BadInputError("not a Twilio status callback: CallSid is missing or malformed")
    status = form.get("CallStatus", "").strip().lower()
    if status not in TWILIO_STATUSES:
        raise BadInputError(f"not a Twilio status callback: unknown CallStatus {status[:32]!r}")
    return StatusCallback(
        call_sid=call_sid,
        call_status=status,
        sequence_number=_whole_number(form, "SequenceNumber"),
        timestamp=_timestamp(form.get("Timestamp"), received_at),
        call_from=_text(form, "From"),
        call_to=_text(form, "To"),
        direction=_text(form, "Direction"),
        account_sid=_text(form, "AccountSid"),
        call_duration=_whole_number(form, "CallDuration"),
    )


def _text(form: Mapping[str, str], name: str) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    if len(value) > _MAX_FIELD:
        raise BadInputError(f"{name} is longer than {_MAX_FIELD} characters")
    return value


def _whole_number(form: Mapping[str, str], name: str) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    number = digits(value, max_digits=9)
    if number is None:
        raise BadInputError(f"{name} must be a whole number of at most 9 digits, got {value[:20]!r}")
    return number


def _timestamp(value: str | None, received_at: datetime) -> datetime:
    """Twilio's RFC 2822 `Timestamp` (ISO 8601 accepted too); the arrival time when absent."""
    if not value:
        return received_at
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise BadInputError(f"Timestamp is not an RFC 2822 date: {value[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not 2000 <= moment.year <= 2999:
        raise BadInputError(f"Timestamp is out of range: {value[:40]!r}")
    return moment.astimezone(UTC)
