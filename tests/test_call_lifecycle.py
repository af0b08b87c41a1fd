"""The pure call state machine, over every order of a call's events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from callmeter.call_lifecycle import CallEventKind, CallStatus, StatusCallback, apply_event, new_call_state
from callmeter.months import UTC_CALENDAR

T0 = datetime(2026, 2, 18, 14, 30, tzinfo=UTC)


def event(status: str, at: datetime, duration: int | None = None, sequence: int = 0) -> StatusCallback:
    return StatusCallback("CA1", status, sequence, at, "+1555", "+1844", "inbound", "AC1", duration)


EVENTS = [
    event("initiated", T0 - timedelta(seconds=6), sequence=0),
    event("ringing", T0 - timedelta(seconds=5), sequence=1),
    event("in-progress", T0, sequence=2),
    event("completed", T0 + timedelta(seconds=145), duration=145, sequence=3),
]


def replay(events: list[StatusCallback]):
    state = new_call_state(events[0])
    changes = []
    for item in events:
        state, change = apply_event(state, item, UTC_CALENDAR)
        changes.append(change)
    return state, changes


def test_every_order_ends_in_the_same_completed_call():
    for order in itertools.permutations(EVENTS):
        state, changes = replay(list(order))
        assert state.status is CallStatus.COMPLETED
        assert (state.started_at, state.ended_at, state.duration_seconds) == (
            T0,
            T0 + timedelta(seconds=145),
            145,
        )
        assert state.first_event_at == T0 - timedelta(seconds=6)
        assert changes.count(CallEventKind.ENDED) == 1


def test_in_order_changes_are_updated_started_ended():
    _, changes = replay(EVENTS)
    assert changes == [
        CallEventKind.UPDATED,
        CallEventKind.UPDATED,
        CallEventKind.STARTED,
        CallEventKind.ENDED,
    ]


def test_a_final_status_is_never_left_and_duplicates_change_nothing():
    state, _ = replay(EVENTS)
    for late in EVENTS + [
        event("busy", T0 + timedelta(hours=1), duration=0),
        event("completed", T0 + timedelta(hours=1), duration=9999, sequence=9),
    ]:
        assert apply_event(state, late, UTC_CALENDAR) == (state, None)


def test_failed_finals_cost_nothing_and_have_no_start():
    for status in ("busy", "no-answer", "canceled", "failed"):
        state, changes = replay([EVENTS[0], event(status, T0, duration=0, sequence=1)])
        assert state.status is CallStatus.FAILED
        assert state.started_at is None and changes[-1] is CallEventKind.ENDED


def test_completed_without_duration_uses_the_answer_time():
    state, _ = replay([EVENTS[2], event("completed", T0 + timedelta(seconds=75))])
    assert state.duration_seconds == 75


def test_the_answer_time_wins_over_the_estimate_whatever_the_order():
    # Twilio's CallDuration and Timestamps need not agree to the second: here the call was answered
    # 25 s before it ended but reports 60 s. started_at is the answer's time in every order.
    answered = event("in-progress", T0, sequence=2)
    completed = event("completed", T0 + timedelta(seconds=25), duration=60, sequence=3)
    for order in itertools.permutations([EVENTS[0], answered, completed]):
        state, changes = replay(list(order))
        assert (state.started_at, state.duration_seconds) == (T0, 60), order
        assert changes.count(CallEventKind.ENDED) == 1


def test_a_late_answer_never_moves_a_completed_call_to_another_month():
    midnight = datetime(2026, 11, 1, tzinfo=UTC)
    answered = event("in-progress", midnight + timedelta(seconds=5), sequence=2)
    completed = event("completed", midnight + timedelta(seconds=30), duration=60, sequence=3)
    state, _ = replay([completed, answered])
    assert state.started_at == midnight - timedelta(seconds=30)  # October's, where it was billed
    state, _ = replay([answered, completed])
    assert state.started_at == answered.timestamp
