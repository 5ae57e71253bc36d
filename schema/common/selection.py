"""Look-ahead into a connection's selection, so a loader can prefetch what nodes will need.

Types built from such a projection (`Projected`) hold only the columns that were fetched:
reading another one raises `ColumnNotFetched` instead of answering None, so a resolver
that needs an unselected column fails on its first run rather than returning wrong data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

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


# (purpose, id of a field node) → (the node, what was derived from it). The look-ahead reads
# names only, ignoring @skip and @include (a superset of columns is harmless), so what a
# node yields never changes: parsed documents are cached, and their nodes come back request
# after request, and every parent of a nested connection shares the same node.
_per_node: dict[tuple[str, int], tuple[object, Any]] = {}
_MAX_NODES = 4096


def per_field_node(info: Any, purpose: str, derive: Callable[[Any], T]) -> T:
    """`derive(info)`, once per field node: the look-ahead runs once per document."""
    node = info._raw_info.field_nodes[0]
    key = (purpose, id(node))
    found = _per_node.get(key)
    if found is None or found[0] is not node:
        if len(_per_node) >= _MAX_NODES:
            _per_node.clear()
        found = _per_node[key] = (node, derive(info))  # the node is kept: its id stays unique
    return cast("T", found[1])


def page_columns(info: Any) -> frozenset[str]:
    """The names a connection's nodes select, as candidate columns (see `node_columns`)."""
    return per_field_node(info, "columns", node_columns)


class ColumnNotFetched(AttributeError):
    """A column the query's selection did not fetch was read."""


class Projected:
    """Base of GraphQL types built from a projected row (loaders/messages.py): unfetched
    columns are absent, and reading one raises `ColumnNotFetched`."""

    if not TYPE_CHECKING:  # mypy would otherwise accept any attribute name on these types

        def __getattr__(self, name: str) -> Any:
            # Only reached when normal lookup failed: the attribute is not on the instance.
            if name in getattr(type(self), "__dataclass_fields__", ()):
                raise ColumnNotFetched(
                    f"{type(self).__name__}.{name} was not fetched: the query did not select "
                    "it. Fetch it (the loader's columns) before a resolver reads it."
                )
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
