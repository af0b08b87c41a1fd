"""A calendar month in UTC, the unit usage is rolled up and billed by. Parsed once at the edge."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

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

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(UTC)
        return cls(moment.year, moment.month)

    @classmethod
    def current(cls) -> Month:
        return cls.of(datetime.now(UTC))

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Month:
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    @property
    def starts_at(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"
