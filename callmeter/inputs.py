"""What text given by a user may be: ids, whole numbers and one-line names, checked once at the edge.

Every parser of digits in the service is `digits()` below, each caller saying how many it allows and
how it refuses the rest, so an id over 19 digits or a number of 5,000 never reaches `int()`
(Python refuses to convert over 4,300 digits) or a BIGINT column.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

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


MAX_URL_LENGTH = 2000


def absolute_url(url: str, *, name: str, schemes: tuple[str, ...]) -> SplitResult:
    """`url` split, if it is an absolute URL of one of `schemes` with a host (and a port, if any, in
    range), at most 2000 characters on one line, without credentials; else a BadInputError."""
    refusal = BadInputError(
        f"{name} must be an absolute {' or '.join(f'{scheme}://' for scheme in schemes)} URL "
        f"of at most {MAX_URL_LENGTH} characters, without credentials"
    )
    if len(url) > MAX_URL_LENGTH or not is_one_line(url):
        raise refusal
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range or not a number)
    except ValueError:  # e.g. "https://[::1" or "https://x.com:99999/"
        raise refusal from None
    if parts.scheme not in schemes or not parts.hostname or parts.username or parts.password:
        raise refusal
    return parts
