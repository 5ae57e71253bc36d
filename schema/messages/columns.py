"""Which message and contact columns a messages connection must fetch for its selection."""

from __future__ import annotations

from typing import Any

from app.messages.columns import MessageColumns
from schema.common.selection import node_child_columns, node_columns, selects

# Field node → (the node, its shape). The look-ahead reads names only, ignoring @skip and
# @include (a superset of columns is harmless), so a node's shape never changes: parsed
# documents are cached, and their nodes come back request after request.
_shapes: dict[int, tuple[object, tuple[MessageColumns, bool]]] = {}
_MAX_SHAPES = 2048


def message_page_shape(info: Any) -> tuple[MessageColumns, bool]:
    """The columns to fetch and whether interactions are selected, once per field node.

    Every parent of a nested connection (ten campaigns' `messages`) shares the same field
    node, and every request of a cached document the same nodes, so the look-ahead runs
    once per document. Selected names that are not columns (`campaign`, `__typename`, …)
    are dropped.
    """
    node = info._raw_info.field_nodes[0]
    found = _shapes.get(id(node))
    if found is None or found[0] is not node:
        shape = (
            MessageColumns.of(node_columns(info), node_child_columns(info, "contact")),
            selects(info, "interactions"),
        )
        if len(_shapes) >= _MAX_SHAPES:
            _shapes.clear()
        found = _shapes[id(node)] = (node, shape)  # the node is kept so its id stays unique
    return found[1]
