"""The one way text from outside (GraphQL ids, cursors, webhook callback data) becomes a key."""

from __future__ import annotations

import re

# ASCII digits only: `str.isdigit()` also accepts "²" (which int() then rejects) and "١٢"
# (which int() reads as 12). At most 18 digits, so every accepted value fits a bigint.
_KEY = re.compile(r"[0-9]{1,18}")


def parse_key(text: str) -> int | None:
    """The database key `text` spells, or None when it is not a plain ASCII decimal."""
    return int(text) if _KEY.fullmatch(text) else None
