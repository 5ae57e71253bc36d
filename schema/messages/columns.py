"""Which message and contact columns a messages connection must fetch for its selection."""

from __future__ import annotations

from typing import Any

from app.messages.repository import MessageColumns
from schema.common.selection import node_child_columns, node_columns, selects


def message_page_shape(info: Any) -> tuple[MessageColumns, bool]:
    """The columns to fetch and whether interactions are selected, once per field node.

    Every parent of a nested connection (ten campaigns' `messages`) shares the same field
    node, so the look-ahead runs once per request, not once per parent. Selected names
    that are not columns (`campaign`, `__typename`, …) are dropped.
    """
    node = info._raw_info.field_nodes[0]
    memo = info.context.selections
    found = memo.get(id(node))
    if found is None:
        shape = (
            MessageColumns.of(node_columns(info), node_child_columns(info, "contact")),
            selects(info, "interactions"),
        )
        found = memo[id(node)] = (node, shape)  # the node is kept so its id stays unique
    return found[1]
