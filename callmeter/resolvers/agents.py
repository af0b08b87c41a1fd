"""Checks on a new agent: a name, and E.164 numbers that are not repeated."""

from __future__ import annotations

import re
from collections.abc import Sequence

from callmeter.errors import BadInputError
from callmeter.text import is_one_line

E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def validate_agent(name: str, numbers: Sequence[str]) -> tuple[str, list[str]]:
    name = name.strip()
    if not name or len(name) > 200:
        raise BadInputError("agent name must be 1 to 200 characters")
    if not is_one_line(name):
        raise BadInputError("agent name must not contain control characters or line breaks")
    if not numbers:
        raise BadInputError("an agent needs at least one phone number")
    cleaned = [number.strip() for number in numbers]
    for number in cleaned:
        if not E164.match(number):
            raise BadInputError(f"phone number {number[:20]!r} is not E.164 (like +18449263376)")
    if len(set(cleaned)) != len(cleaned):
        raise BadInputError("the same phone number is listed twice")
    return name, cleaned
