"""Which message and contact columns a messages connection must fetch for its selection."""

from __future__ import annotations

from typing import Any

from app.messages.repository import MessageColumns
from schema.common.selection import node_child_columns, node_columns


def message_columns(info: Any) -> MessageColumns:
    """Names that are not columns (e.g. `campaign`, `__typename`) are ignored downstream."""
    return MessageColumns(message=node_columns(info), contact=node_child_columns(info, "contact"))
