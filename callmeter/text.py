"""What a name or other one-line text given by a user may contain."""

from __future__ import annotations

import re

# C0 and C1 control characters (NUL among them, which PostgreSQL cannot store in text) and lone
# surrogates (which cannot be encoded as UTF-8).
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def is_one_line(text: str) -> bool:
    """True when `text` has no control characters, line breaks or lone surrogates."""
    return _UNSTORABLE.search(text) is None
