"""Months: the unit usage is rolled up and billed by, in each customer's billing time zone.

`Month` is a calendar month, parsed once at the edge. `Calendar` is one customer's zones over time
and the one place every month computation goes through: which month an instant falls in, when a
month starts, which month is current. A month starts at local midnight on its 1st in the zone in
force for it; a zone change takes effect at the start of its month, so the month before ends at
that instant (a few hours shorter or longer than usual). Pure: no I/O, and the clock only where a
caller asks for `current()` without giving `now`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from callmeter.errors import BadInputError

# YYYY-MM with years 0001 to 9998 (so the month after any month is one too), written out without
# lookarounds so that /openapi.json can publish the same pattern.
MONTH_PATTERN = (
    r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])"
    r"-(0[1-9]|1[0-2])$"
)
_MONTH = re.compile(MONTH_PATTERN)


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        found = _MONTH.match(text or "")
        if not found:
            shown = (text or "")[:20]
            raise BadInputError(f"month must be YYYY-MM (years 0001 to 9998), got {shown!r}")
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def stored(cls, text: str) -> Month:
        """A month as the database keeps it ("YYYY-MM", written by this service)."""
        return cls(int(text[:4]), int(text[5:7]))

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def months_until(self, other: Month) -> int:
        return (other.year - self.year) * 12 + other.month - self.month

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


FIRST_MONTH = Month(1, 1)


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """The IANA zone of that name (the system's zone database, else the `tzdata` package)."""
    return ZoneInfo(name)


@lru_cache(maxsize=4096)
def _month_start(zone_name: str, year: int, month: int) -> datetime:
    # Every event's month is two of these: remembered (the zone database does not change in a run).
    return datetime(year, month, 1, tzinfo=zone(zone_name)).astimezone(UTC)


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_zone(name: str) -> str:
    """An IANA zone name given by a user, or BAD_USER_INPUT."""
    if name not in _known_zones():
        raise BadInputError(f"{name[:70]!r} is not an IANA time zone name (like America/New_York)")
    return name


@dataclass(frozen=True)
class Calendar:
    """A customer's billing zones: (from month, IANA name), oldest first, the first from FIRST_MONTH."""

    zones: tuple[tuple[Month, str], ...] = ((FIRST_MONTH, "UTC"),)

    @classmethod
    def of_zone(cls, name: str) -> Calendar:
        return cls(((FIRST_MONTH, check_zone(name)),))

    def zone_for(self, month: Month) -> str:
        """The zone in force for `month`."""
        found = self.zones[0][1]
        for start, name in self.zones:
            if start > month:
                break
            found = name
        return found

    def starts_at(self, month: Month) -> datetime:
        """The UTC instant `month` starts: local midnight on its 1st in its zone. A midnight the
        clocks skip starts the month at the jump; one they repeat, at its first occurrence."""
        return _month_start(self.zone_for(month), month.year, month.month)

    def month_of(self, instant: datetime) -> Month:
        """The month `instant` falls in: local months, each ending where the next begins."""
        approximate = instant.astimezone(zone(self.zone_for(_utc_month(instant))))
        month = Month(approximate.year, approximate.month)
        while instant < self.starts_at(month):
            month = month.previous()
        while instant >= self.starts_at(month.next()):
            month = month.next()
        return month

    def current(self, now: datetime | None = None) -> Month:
        return self.month_of(now or datetime.now(UTC))

    def timezone_now(self, now: datetime | None = None) -> str:
        """The zone in force now."""
        return self.zone_for(self.current(now))

    def changed(self, name: str, from_month: Month) -> Calendar:
        """This calendar with `name` in force from `from_month` (an entry there replaced; later
        scheduled changes stay, as with plan assignments)."""
        check_zone(name)
        kept = [(start, old) for start, old in self.zones if start != from_month]
        return Calendar(tuple(sorted([*kept, (from_month, name)])))


def _utc_month(instant: datetime) -> Month:
    moment = instant.astimezone(UTC)
    return Month(moment.year, moment.month)


UTC_CALENDAR = Calendar()


def calendar_from(zones: Sequence[Sequence[str]]) -> Calendar:
    """A calendar as stored: [["0001-01", "UTC"], ["2027-01", "America/New_York"]]."""
    return Calendar(tuple((Month.stored(start), name) for start, name in zones))


def calendar_to(calendar: Calendar) -> list[list[str]]:
    return [[str(start), name] for start, name in calendar.zones]
