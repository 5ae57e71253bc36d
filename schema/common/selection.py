"""Look-ahead into a connection's selection, so a loader can prefetch what nodes will need.

Types built from such a projection (`Projected`) hold only the columns that were fetched:
reading another one raises `ColumnNotFetched` instead of answering None. A field read
through the schema's default resolver (`read_field`) then costs one more statement, which
fetches the whole row, never an error: correctness first. Each such read is counted
(`herald_projection_fallbacks_total`) and logged, because it means a look-ahead missed a
column; the differential tests assert that none happens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar, cast

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from app.compat import field_nodes
from app.observability.metrics import PROJECTION_FALLBACKS

if TYPE_CHECKING:
    from loaders.registry import Loaders

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    """Fields of a selection set with fragments flattened in."""
    for selection in selections:
        if isinstance(selection, FragmentSpread | InlineFragment):
            yield from _fields(selection.selections)
        else:
            yield selection


def _node_fields(connection: SelectedField) -> Iterator[SelectedField]:
    for field in _fields(connection.selections):
        if field.name == "nodes":
            yield from _fields(field.selections)
        elif field.name == "edges":
            for edge_field in _fields(field.selections):
                if edge_field.name == "node":
                    yield from _fields(edge_field.selections)


def selects(info: Any, name: str) -> bool:
    """Whether the connection being resolved asks for `name` on its nodes."""
    return any(
        field.name == name
        for connection in info.selected_fields
        for field in _node_fields(connection)
    )


def _snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def node_columns(info: Any) -> frozenset[str]:
    """Snake-case names of the fields the connection's nodes select (candidate columns)."""
    return frozenset(
        _snake(field.name)
        for connection in info.selected_fields
        for field in _node_fields(connection)
    )


def node_child_columns(info: Any, name: str) -> frozenset[str] | None:
    """Snake-case names selected under `nodes { <name> { … } }`; None when `name` is not."""
    children = [
        field
        for connection in info.selected_fields
        for field in _node_fields(connection)
        if field.name == name
    ]
    if not children:
        return None
    return frozenset(_snake(sub.name) for child in children for sub in _fields(child.selections))


# (purpose, ids of a field's merged nodes) → (the nodes, what was derived from them). A
# field's answer is built from all the nodes merged under its response name, and which
# nodes those are depends on the operation, the fragments spread beside it and the values
# of `@skip`/`@include`: the key holds every one of them. Within those nodes the look-ahead
# reads names only, ignoring directives (a superset of columns is harmless), so what a set of
# nodes yields never changes. Parsed documents are cached, so the same nodes come back
# request after request, and every parent of a nested connection shares them.
_per_nodes: dict[tuple[object, ...], tuple[tuple[object, ...], Any]] = {}
_MAX_ENTRIES = 4096


def per_field_node(info: Any, purpose: str, derive: Callable[[Any], T]) -> T:
    """`derive(info)`, once per set of merged field nodes: the look-ahead runs once per
    document, operation and directive values."""
    nodes = field_nodes(info)
    key = (purpose, *map(id, nodes))
    found = _per_nodes.get(key)
    if found is None:
        if len(_per_nodes) >= _MAX_ENTRIES:
            _per_nodes.clear()
        # The nodes are kept with the entry: while it exists, their ids stay theirs.
        found = _per_nodes[key] = (tuple(nodes), derive(info))
    return cast("T", found[1])


def page_columns(info: Any) -> frozenset[str]:
    """The names a connection's nodes select, as candidate columns (see `node_columns`)."""
    return per_field_node(info, "columns", node_columns)


class ColumnNotFetched(AttributeError):
    """A column the query's selection did not fetch was read."""


class Projected:
    """Base of GraphQL types built from a projected row (loaders/messages.py): unfetched
    columns are absent, and reading one raises `ColumnNotFetched`."""

    @classmethod
    async def refetch(cls, loaders: Loaders, item: Any) -> Any:
        """The whole of `item` (its id is always fetched), for a column it lacks."""
        raise NotImplementedError

    if not TYPE_CHECKING:  # mypy would otherwise accept any attribute name on these types

        def __getattr__(self, name: str) -> Any:
            # Only reached when normal lookup failed: the attribute is not on the instance.
            if name in getattr(type(self), "__dataclass_fields__", ()):
                raise ColumnNotFetched(
                    f"{type(self).__name__}.{name} was not fetched: the query did not select "
                    "it. Fetch it (the loader's columns) before a resolver reads it."
                )
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


# The loaders of the operation being executed, for `read_field`'s one more statement.
_loaders: ContextVar[Loaders | None] = ContextVar("herald_projection_loaders", default=None)


@contextmanager
def refetching(loaders: Loaders) -> Iterator[None]:
    """Let `read_field` fetch what a projection lacks through `loaders` (one operation)."""
    token = _loaders.set(loaders)
    try:
        yield
    finally:
        _loaders.reset(token)


def read_field(source: Any, name: str) -> Any:
    """The schema's default resolver: `getattr`, except that a column a projection did not
    fetch is fetched (one statement, awaited by the executor) instead of failing."""
    try:
        return getattr(source, name)
    except ColumnNotFetched:
        loaders = _loaders.get()
        if loaders is None:
            raise
        return _refetched(source, name, loaders)


def reads_attribute(resolver: Any) -> bool:
    """Whether a field's default resolver is an attribute read (plans inline it; a read
    that finds a column missing leaves the plan for `read_field`)."""
    return resolver is getattr or resolver is read_field


async def _refetched(source: Any, name: str, loaders: Loaders) -> Any:
    kind = type(source).__name__
    PROJECTION_FALLBACKS.labels(kind).inc()
    logger.warning("%s.%s was read but not fetched: the whole row is fetched again", kind, name)
    whole = await type(source).refetch(loaders, source)
    for column, value in vars(whole).items():
        source.__dict__.setdefault(column, value)
    return getattr(source, name)


def selects_on_value(info: Any, name: str) -> bool:
    """Whether the field being resolved selects `name` on its value, through fragments (of
    any type: a superset is harmless)."""
    return any(
        field.name == name
        for selected in info.selected_fields
        for field in _fields(selected.selections)
    )
