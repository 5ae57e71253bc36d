"""Loader building blocks: the types loaders build, a session-bound DataLoader, grouping.

Loaders depend on repositories only. What they build from rows (the schema's GraphQL
types) is handed to them as `Types` by the schema layer, which composes them per request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from app.loading import ShieldedLoader
from app.models import MessageStatus, WhatsAppStatus

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


@dataclass(frozen=True)
class Types:
    """The classes loaders build values of: each has `from_row(row)` (`of(counts)` for
    the statistics); messages and contacts are also built from page rows directly."""

    campaign: Any
    category: Any
    contact: Any
    message: Any
    interaction: Any
    message_stats: Any
    template: Any


# Enum columns of page rows (message status, contact WhatsApp status): value → member. Rows
# from the driver carry the value, SQLAlchemy's the member (equal to it).
ENUMS: dict[str, dict[Any, Any]] = {
    "status": dict(MessageStatus._value2member_map_),
    "whatsapp_status": dict(WhatsAppStatus._value2member_map_),
}


def column_value(index: int, attribute: str, enums: bool = True) -> str:
    """The expression a generated builder reads an attribute with from `row`: ids as
    strings, enum columns of `ENUMS` as members when `enums` (driver rows carry the value,
    SQLAlchemy's the member)."""
    value = f"str(row[{index}])" if attribute == "id" else f"row[{index}]"
    return f"{attribute}[{value}]" if enums and attribute in ENUMS else value


@lru_cache(maxsize=256)
def projected(
    fields: tuple[str, ...], cls: type, enums: bool = True
) -> Callable[[Sequence[Any]], list[Any]]:
    """Objects of `cls` from rows of `fields`, read by index, with only those columns set
    (a `Projected` type raises on the others): no constructor call, ids as strings, enum
    columns as members (`enums` false: as their values, for a table whose enum columns are
    not the messages' and contacts'). A constructor per row and decoding unselected columns
    (jsonb, timestamps) cost more than the rest of a small page's building."""
    values = [f"{name!r}: {column_value(index, name, enums)}" for index, name in enumerate(fields)]
    body = [
        "def build(rows):",
        "    built = []",
        "    for row in rows:",
        "        item = new(cls)",
        f"        item.__dict__ = {{{', '.join(values)}}}",
        "        built.append(item)",
        "    return built",
    ]
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls, **ENUMS}
    exec("\n".join(body), namespace)  # the names are the repository's own column names
    build: Callable[[Sequence[Any]], list[Any]] = namespace["build"]
    return build


class SessionLoader(ShieldedLoader[K, V], Generic[K, V]):
    """A DataLoader whose batch function reads through the request's session; its futures
    outlive any one awaiter's cancellation (`ShieldedLoader`)."""

    def __init__(self, session: AsyncSession, types: Types, **options: Any) -> None:
        super().__init__(**options)
        self.session = session
        self.types = types

    async def load_now(self, keys: Sequence[K]) -> list[V]:
        """`load_many` for a caller that holds every key at once (a planned query's list
        of parents): one batch now, without a future per key. Keys already loaded come
        from the cache and new values go into it, as `load` would leave them."""
        if not self.batch:  # a loader told not to batch (loaders/naive.py) loads each key
            return [await self.load(key) for key in keys]
        cache = self._cache
        missing = [key for key in dict.fromkeys(keys) if key not in cache]
        if missing:
            for key, value in zip(missing, await self.batch_load_fn(missing), strict=True):
                self.prime(key, value)
        return [await self.awaitable(cache[key]) for key in keys]


def group_by_owner(rows: Iterable[Any], build: Callable[[Any], T]) -> dict[int, list[T]]:
    """Rows carrying `owner_id` → {owner_id: [built, ...]}, keeping row order."""
    grouped: dict[int, list[T]] = defaultdict(list)
    for row in rows:
        grouped[row.owner_id].append(build(row))
    return grouped
