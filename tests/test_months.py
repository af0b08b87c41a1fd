"""Months in a customer's billing zone: the pure calendar and the call state machine, over random
zones, instants, zone changes and arrival orders (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callmeter.call_lifecycle import StatusCallback, apply_event, new_call_state
from callmeter.errors import BadInputError
from callmeter.months import (
    FIRST_MONTH,
    Calendar,
    Month,
    calendar_from,
    calendar_to,
    check_zone,
    zone,
)

ZONES = sorted(available_timezones())
ZONE = st.sampled_from(ZONES)
# Whole seconds, as Twilio's timestamps are, from 1971 to 2099.
INSTANT = st.integers(
    int(datetime(1971, 1, 1, tzinfo=UTC).timestamp()), int(datetime(2099, 12, 1, tzinfo=UTC).timestamp())
).map(lambda seconds: datetime.fromtimestamp(seconds, UTC))
MONTH = st.builds(Month, st.integers(1971, 2099), st.integers(1, 12))


def local_month(instant: datetime, name: str) -> Month | None:
    """The month a wall clock in `name` shows at `instant`; None where that wall time is ambiguous
    (clocks set back), where "the local month" is not one value."""
    local = instant.astimezone(zone(name))
    naive = local.replace(tzinfo=None)
    if (
        naive.replace(tzinfo=zone(name), fold=0).utcoffset()
        != naive.replace(tzinfo=zone(name), fold=1).utcoffset()
    ):
        return None
    return Month(local.year, local.month)


def near_a_local_midnight(draw, name: str) -> datetime:
    """An instant within a few seconds of local midnight on a month's 1st, or at 01:30 on a day
    the clocks change, in zone `name`."""
    month = draw(MONTH)
    if draw(st.booleans()):
        start = Calendar.of_zone(name).starts_at(month)
        return start + timedelta(seconds=draw(st.integers(-3, 3)))
    transitions = [
        day
        for day in (datetime(month.year, month.month, 1, tzinfo=UTC) + timedelta(days=n) for n in range(28))
        if (day + timedelta(days=1)).astimezone(zone(name)).utcoffset()
        != day.astimezone(zone(name)).utcoffset()
    ]
    if not transitions:
        return Calendar.of_zone(name).starts_at(month)
    day = draw(st.sampled_from(transitions)).astimezone(zone(name)).date()
    wall = datetime(day.year, day.month, day.day, 1, 30, tzinfo=zone(name), fold=draw(st.integers(0, 1)))
    return wall.astimezone(UTC) + timedelta(seconds=draw(st.integers(-1, 1)))


@given(name=ZONE, instant=INSTANT)
@settings(max_examples=400)
def test_an_instant_is_in_the_month_its_local_wall_clock_names(name, instant):
    calendar = Calendar.of_zone(name)
    month = calendar.month_of(instant)
    assert calendar.starts_at(month) <= instant < calendar.starts_at(month.next())
    expected = local_month(instant, name)
    assert expected is None or month == expected


@given(data=st.data(), name=ZONE)
@settings(max_examples=300)
def test_instants_at_local_midnight_and_on_dst_days(data, name):
    instant = near_a_local_midnight(data.draw, name)
    calendar = Calendar.of_zone(name)
    month = calendar.month_of(instant)
    assert calendar.starts_at(month) <= instant < calendar.starts_at(month.next())
    expected = local_month(instant, name)
    assert expected is None or month == expected


@st.composite
def calendars(draw) -> Calendar:
    calendar = Calendar.of_zone(draw(ZONE))
    for _ in range(draw(st.integers(0, 4))):
        calendar = calendar.changed(draw(ZONE), draw(MONTH))
    return calendar


@given(calendar=calendars(), month=MONTH)
@settings(max_examples=300)
def test_months_tile_time_across_zone_changes(calendar, month):
    """Each month ends exactly where the next begins, in whichever zones they are in."""
    start, end = calendar.starts_at(month), calendar.starts_at(month.next())
    assert start < end
    assert calendar.month_of(start) == month
    assert calendar.month_of(end - timedelta(microseconds=1)) == month
    assert calendar.month_of(end) == month.next()
    assert calendar.month_of(start - timedelta(microseconds=1)) == month.previous()


def test_a_change_shortens_or_lengthens_the_month_before_it():
    utc, la = "UTC", "America/Los_Angeles"
    westward = Calendar.of_zone(utc).changed(la, Month(2027, 1))
    eastward = Calendar.of_zone(la).changed(utc, Month(2027, 1))
    normal = timedelta(days=31)
    assert westward.starts_at(Month(2027, 1)) - westward.starts_at(Month(2026, 12)) == normal + timedelta(
        hours=8
    )
    assert eastward.starts_at(Month(2027, 1)) - eastward.starts_at(Month(2026, 12)) == normal - timedelta(
        hours=8
    )
    moment = datetime(2027, 1, 1, 3, tzinfo=UTC)  # 19:00 on Dec 31 in Los Angeles
    assert westward.month_of(moment) == Month(2026, 12)
    assert eastward.month_of(moment) == Month(2027, 1)
    assert westward.zone_for(Month(2026, 12)) == utc and westward.zone_for(Month(2027, 1)) == la


def test_changes_replace_their_month_and_keep_later_ones():
    calendar = (
        Calendar.of_zone("UTC").changed("Asia/Tokyo", Month(2027, 5)).changed("Europe/Paris", Month(2027, 2))
    )
    assert calendar.zones == (
        (FIRST_MONTH, "UTC"),
        (Month(2027, 2), "Europe/Paris"),
        (Month(2027, 5), "Asia/Tokyo"),
    )
    again = calendar.changed("Europe/Berlin", Month(2027, 2))
    assert (
        again.zone_for(Month(2027, 3)) == "Europe/Berlin" and again.zone_for(Month(2027, 6)) == "Asia/Tokyo"
    )
    assert calendar_from(calendar_to(calendar)) == calendar


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "utc ", "America/New York", "x" * 200])
def test_unknown_zones_are_bad_input(name):
    with pytest.raises(BadInputError, match="IANA time zone"):
        check_zone(name)
    with pytest.raises(BadInputError):
        Calendar.of_zone("UTC").changed(name, Month(2027, 1))


def test_dst_day_0130_and_a_second_around_midnight_by_example():
    la = Calendar.of_zone("America/Los_Angeles")
    assert la.month_of(datetime(2026, 10, 1, 6, 59, 59, tzinfo=UTC)) == Month(2026, 9)  # 23:59:59 PDT
    assert la.month_of(datetime(2026, 10, 1, 7, tzinfo=UTC)) == Month(2026, 10)  # 00:00:00 PDT
    # 2026-11-01 01:30 happens twice in Los Angeles (PDT, then PST): both are November.
    assert la.month_of(datetime(2026, 11, 1, 8, 30, tzinfo=UTC)) == Month(2026, 11)
    assert la.month_of(datetime(2026, 11, 1, 9, 30, tzinfo=UTC)) == Month(2026, 11)
    # Santiago skips local midnight into September: the month starts at the jump.
    santiago = Calendar.of_zone("America/Santiago")
    start = santiago.starts_at(Month(2026, 9))
    assert santiago.month_of(start) == Month(2026, 9)
    assert santiago.month_of(start - timedelta(seconds=1)) == Month(2026, 8)


def event(status: str, sequence: int, at: datetime, duration: int | None = None) -> StatusCallback:
    return StatusCallback("CA1", status, sequence, at, "+1555", "+1844", "inbound", "AC1", duration)


@given(data=st.data(), name=ZONE, duration=st.integers(0, 4 * 3600), extra=st.integers(0, 2))
@settings(max_examples=300)
def test_a_call_lands_in_its_local_start_month_in_any_arrival_order(data, name, duration, extra):
    """Twilio's events of one call, in any order and with repeats: the call's month is the one its
    answer names in the customer's zone (the late-answer rule keeps it there too)."""
    answered = near_a_local_midnight(data.draw, name)
    events = [
        event("initiated", 0, answered - timedelta(seconds=6)),
        event("ringing", 1, answered - timedelta(seconds=5)),
        event("in-progress", 2, answered),
        event("completed", 3, answered + timedelta(seconds=duration), duration),
    ]
    order = data.draw(st.permutations(events)) + [data.draw(st.sampled_from(events)) for _ in range(extra)]
    calendar = Calendar.of_zone(name)
    state = new_call_state(order[0])
    for item in order:
        state, _ = apply_event(state, item, calendar)
    assert state.started_at == answered
    assert calendar.month_of(state.sort_at) == calendar.month_of(answered)
