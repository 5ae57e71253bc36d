"""Loader building blocks: the types loaders build, a session-bound DataLoader, grouping.

Loaders depend on repositories only. What they build from rows (the schema's GraphQL
types) is handed to them as `Types` by the schema layer, which composes them per request.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, TypeVar, cast

from sqlalchemy.ext.asyncio import AsyncSession

from app.codegen import define
from app.loading import ShieldedLoader
from app.models import MessageStatus, WhatsAppStatus

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


@dataclass(frozen=True)
class Types:
    """The classes loaders build values of: each has `from_row(row)` (`of(counts)` for
    the statistics); messages and contacts are also built from page rows directly, their
    global ids by the class's `node_id(key)`."""

    api_key: Any
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
    "status": {member.value: member for member in MessageStatus},
    "whatsapp_status": {member.value: member for member in WhatsAppStatus},
}


def _items(index: int, attribute: str, enums: bool, cls: type) -> list[str]:
    """The dict display items a generated builder sets an attribute with from `row`: the
    `id` column as the class's global id and as `database_id`, enum columns of `ENUMS` as
    members when `enums` (driver rows carry the value, SQLAlchemy's the member)."""
    value = f"row[{index}]"
    if attribute == "id":  # a remembered id is a lookup; another, one call that encodes it
        name = cls.__name__
        return [
            f"'id': (ids_{name}.get({value}) or new_id_{name}({value}))",
            f"'database_id': {value}",
        ]
    if enums and attribute in ENUMS:
        return [f"{attribute!r}: {attribute}[{value}]"]
    return [f"{attribute!r}: {value}"]


@lru_cache(maxsize=256)
def projected(
    fields: tuple[str, ...],
    cls: type,
    enums: bool = True,
    nested: tuple[str, str, type] | None = None,
) -> Callable[[Sequence[Any]], list[Any]]:
    """Objects of `cls` from rows of `fields`, read by index, with only those columns set
    (a `Projected` type raises on the others): no constructor call, the `id` column as the
    global id (`cls.node_id`) and as `database_id`, enum columns as members (`enums` false:
    as their values, for a table whose enum columns are not the messages' and contacts').
    With `nested` = (prefix, attribute, class), the
    columns `<prefix><name>` (a join) make an object of that class, set as `attribute`.
    The key a page groups its rows by (`owner_id`) is not an attribute.

    Generated once per shape, the row indexes written into dict displays: a constructor
    per row, decoding unselected columns (jsonb, timestamps) and a loop over a column list
    each cost more than the rest of a page's building (`python -m bench.codegen`)."""
    prefix = nested[0] if nested else None
    own: list[str] = []
    inner: list[str] = []
    for index, name in enumerate(fields):
        if name == "owner_id":
            continue
        if prefix is not None and name.startswith(prefix):
            attribute = name.removeprefix(prefix)
            inner += _items(index, attribute, enums, nested[2])  # type: ignore[index]
        else:
            own += _items(index, name, enums, cls)
    names: dict[str, Any] = {"new": object.__new__, cls.__name__: cls, **ENUMS}
    body = [f"def build_{cls.__name__}(rows):"]
    for built in (cls, nested[2]) if nested else (cls,):
        node_id, ids = built.node_id, f"ids_{built.__name__}"  # type: ignore[attr-defined]
        names[ids], names[f"new_id_{built.__name__}"] = node_id.memo, node_id.remember
        body.append(f"    if len({ids}) >= {node_id.limit}: {ids}.clear()")  # bounded per page
    title = ", ".join(name for name in fields if name != "owner_id")
    body += ["    built = []", "    for row in rows:"]
    if nested is not None and inner:
        _, attribute, nested_cls = nested
        names[nested_cls.__name__] = nested_cls
        body += [
            f"        {attribute} = new({nested_cls.__name__})",
            f"        {attribute}.__dict__ = {{{', '.join(inner)}}}",
        ]
        own.append(f"{attribute!r}: {attribute}")
    body += [
        f"        item = new({cls.__name__})",
        f"        item.__dict__ = {{{', '.join(own)}}}",
        "        built.append(item)",
        "    return built",
    ]
    source = "\n".join(body)  # the names are the repository's own column names
    entry = f"build_{cls.__name__}"
    build = define("row builder", f"{cls.__name__}({title})", source, names, entry)
    return cast("Callable[[Sequence[Any]], list[Any]]", build)


class SessionLoader(ShieldedLoader[K, V], Generic[K, V]):
    """A DataLoader whose batch function reads through the request's session; its futures
    outlive any one awaiter's cancellation (`ShieldedLoader`)."""

    def __init__(self, session: AsyncSession, types: Types, **options: Any) -> None:
        # The futures by key (aiodataloader's cache_map), which `load_now` reads too.
        self.futures: dict[Any, Any] = options.setdefault("cache_map", {})
        super().__init__(**options)
        self.session = session
        self.types = types

    async def load_now(self, keys: Sequence[K]) -> list[V]:
        """`load_many` for a caller that holds every key at once (a planned query's list
        of parents): one batch now, without a future per key. Keys already loaded come
        from the cache and new values go into it, as `load` would leave them."""
        if not self.batch:  # a loader told not to batch (loaders/naive.py) loads each key
            return [await self.load(key) for key in keys]
        cache = self.futures
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
