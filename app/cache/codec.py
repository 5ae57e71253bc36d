"""How a cached value is stored: the generations it was computed under, then its orjson.

A value reads back only under exactly the generations it was stamped with (app/cache/keys.py
bumps them), so a stale value is a miss without a second round trip.
"""

from __future__ import annotations

from typing import Any

import orjson

Stamp = tuple[int, ...]


class _Miss:
    def __repr__(self) -> str:
        return "MISS"


MISS: Any = _Miss()


def _stamp_bytes(stamp: Stamp) -> bytes:
    return ",".join(map(str, stamp)).encode()


def pack(stamp: Stamp, value: object) -> bytes:
    """`<generations>|<orjson>`; raises TypeError for values orjson cannot encode."""
    return _stamp_bytes(stamp) + b"|" + orjson.dumps(value)


def unpack(raw: bytes, stamp: Stamp) -> Any:
    """The value if it was computed under exactly these generations, else MISS."""
    head, sep, body = raw.partition(b"|")
    if not sep or head != _stamp_bytes(stamp):
        return MISS
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return MISS
