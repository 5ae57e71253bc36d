"""Which message and contact columns a messages connection must fetch for its selection."""

from __future__ import annotations

from typing import Any

from app.messages.repository import MessageColumns
from schema.common.selection import node_child_columns, node_columns


def message_columns(info: Any) -> MessageColumns:
    """Selected names that are not columns (`campaign`, `__typename`, …) are dropped."""
    return MessageColumns.of(node_columns(info), node_child_columns(info, "contact"))
