"""Look-ahead into a connection's selection, so a loader can prefetch what nodes will need."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection


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
