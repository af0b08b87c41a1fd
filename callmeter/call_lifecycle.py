"""A call's lifecycle: Twilio's status vocabulary, the service's call statuses and change kinds, and
the state machine that moves a call by one Twilio status callback. Pure: no I/O, no clock.

These enums are the one definition of each vocabulary: the schema exposes them with
`strawberry.enum(...)` and SQL filters use their values.

Twilio delivers each status event in its own request; they may repeat and arrive in any order. A call's
status only moves forward (queued/initiated < ringing < in-progress < a final status), a final status is
never left, and the final event's `CallDuration` is authoritative.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from callmeter.months import Calendar

# "created" is the state of a call row before its first event is applied; Twilio never sends it.
CREATED = "created"
RANKS = {
    CREATED: -1,
    "queued": 0,
    "initiated": 0,
    "ringing": 1,
    "in-progress": 2,
    "answered": 2,  # the StatusCallbackEvent name, accepted as an alias of in-progress
    "completed": 3,
    "busy": 3,
    "failed": 3,
    "no-answer": 3,
    "canceled": 3,
}
FINAL_RANK = 3
TWILIO_STATUSES = frozenset(RANKS) - {CREATED}
CALL_SID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # Twilio's are CA + 32 hex digits; test SIDs vary


class CallStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"


class CallEventKind(StrEnum):
    """What a committed change did to a call (GraphQL `CallEvent.kind`)."""

    STARTED = "STARTED"
    UPDATED = "UPDATED"
    ENDED = "ENDED"


@dataclass(frozen=True)
class StatusCallback:
    """One parsed Twilio status callback."""

    call_sid: str
    call_status: str
    sequence_number: int | None
    timestamp: datetime
    call_from: str | None
    call_to: str | None
    direction: str | None
    account_sid: str | None
    call_duration: int | None

    @property
    def rank(self) -> int:
        return RANKS[self.call_status]

    @property
    def is_outbound(self) -> bool:
        return (self.direction or "").startswith("outbound")


@dataclass(frozen=True)
class CallState:
    """The fields of a call that the state machine owns."""

    twilio_status: str
    status: CallStatus
    first_event_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: int = 0

    @property
    def rank(self) -> int:
        return RANKS[self.twilio_status]

    @property
    def sort_at(self) -> datetime:
        return self.started_at or self.first_event_at


def new_call_state(event: StatusCallback) -> CallState:
    """The state of a call before any of its events is applied."""
    return CallState(twilio_status=CREATED, status=CallStatus.ACTIVE, first_event_at=event.timestamp)


def apply_event(
    state: CallState, event: StatusCallback, calendar: Calendar
) -> tuple[CallState, CallEventKind | None]:
    """The call after `event`, and what kind of change that was (None: nothing changed). The
    customer's `calendar` says which month a moment is in (see `_answered_late`)."""
    first_event_at = min(state.first_event_at, event.timestamp)
    if state.rank == FINAL_RANK or event.rank <= state.rank:
        # A late or repeated event never moves a call back; it may only reveal an earlier first
        # event (when a call that was never answered sorts), or when a completed call was answered.
        revised = replace(state, first_event_at=first_event_at)
        if _answered_late(state, event, calendar):
            revised = replace(revised, started_at=event.timestamp)
        return revised, None
    status = "in-progress" if event.call_status == "answered" else event.call_status
    if event.rank < 2:
        return replace(state, twilio_status=status, first_event_at=first_event_at), CallEventKind.UPDATED
    if event.rank == 2:
        started = replace(
            state, twilio_status=status, started_at=event.timestamp, first_event_at=first_event_at
        )
        return started, CallEventKind.STARTED
    if status != "completed":
        ended = replace(
            state,
            twilio_status=status,
            status=CallStatus.FAILED,
            ended_at=event.timestamp,
            first_event_at=first_event_at,
            duration_seconds=max(event.call_duration or 0, 0),
        )
        return ended, CallEventKind.ENDED
    duration = event.call_duration
    if duration is None:
        duration = int((event.timestamp - state.started_at).total_seconds()) if state.started_at else 0
    duration = max(duration, 0)
    started_at = state.started_at or event.timestamp - timedelta(seconds=duration)
    ended = replace(
        state,
        twilio_status=status,
        status=CallStatus.COMPLETED,
        started_at=started_at,
        ended_at=event.timestamp,
        duration_seconds=duration,
        first_event_at=min(first_event_at, started_at),
    )
    return ended, CallEventKind.ENDED


def _answered_late(state: CallState, event: StatusCallback, calendar: Calendar) -> bool:
    """True for the answer of a completed call whose start was estimated as its end minus its
    duration (the `completed` event came first). The estimate is replaced by the answer's time, as
    if the events had come in order, unless that would move the call to another month of the
    customer's calendar: its month's totals are already billed, so there the estimate stays."""
    if state.status is not CallStatus.COMPLETED or event.rank != 2 or state.started_at is None:
        return False
    estimated = state.ended_at is not None and state.started_at == state.ended_at - timedelta(
        seconds=state.duration_seconds
    )
    return (
        estimated
        and event.timestamp != state.started_at
        and calendar.month_of(event.timestamp) == calendar.month_of(state.started_at)
    )
