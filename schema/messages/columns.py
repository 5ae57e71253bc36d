"""Which message and contact columns a messages connection must fetch for its selection."""

from __future__ import annotations

from typing import Any

from app.messages.columns import MessageColumns
from schema.common.selection import node_child_columns, node_columns, per_field_node, selects


def message_page_shape(info: Any) -> tuple[MessageColumns, bool]:
    """The columns to fetch and whether interactions are selected, once per field node.

    Selected names that are not columns (`campaign`, `__typename`, …) are dropped.
    """
    return per_field_node(info, "messages", _shape)


def _shape(info: Any) -> tuple[MessageColumns, bool]:
    columns = MessageColumns.of(node_columns(info), node_child_columns(info, "contact"))
    return columns, selects(info, "interactions")
