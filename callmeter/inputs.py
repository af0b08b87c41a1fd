"""What text given by a user may be: ids, whole numbers and one-line names, checked once at the edge.

Every parser of digits in the service is `digits()` below, each caller saying how many it allows and
how it refuses the rest, so an id over 19 digits or a number of 5,000 never reaches `int()`
(Python refuses to convert over 4,300 digits) or a BIGINT column.
"""

from __future__ import annotations

import re

from callmeter.errors import BadInputError

MAX_ID = 2**63 - 1  # ids are BIGINT columns; a token's `sub` and GraphQL's ID accept the same range

# C0 and C1 control characters (NUL among them, which PostgreSQL cannot store in text) and lone
# surrogates (which cannot be encoded as UTF-8).
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def digits(text: str, *, max_digits: int) -> int | None:
    """The number `text` spells in 1 to `max_digits` ASCII digits, else None."""
    if not text or len(text) > max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def parse_id(value: object, name: str) -> int:
    """A positive id of at most 2^63-1, given as a number or as text."""
    number = digits(str(value).strip(), max_digits=19)
    if number is None or not 0 < number <= MAX_ID:
        raise BadInputError(f"{name} must be a positive whole number, got {str(value)[:20]!r}")
    return number


def is_one_line(text: str) -> bool:
    """True when `text` has no control characters, line breaks or lone surrogates."""
    return _UNSTORABLE.search(text) is None
