"""Composite loader keys; kept apart so GraphQL types can build them without import cycles."""

from __future__ import annotations

from dataclasses import dataclass

from app.messages.repository import ALL_COLUMNS, MessageColumns
from app.models import MessageStatus
from app.pagination import Page


@dataclass(frozen=True)
class MessagePageKey:
    owner_id: int
    page: Page
    status: MessageStatus | None = None
    columns: MessageColumns = ALL_COLUMNS
    with_interactions: bool = False

    def shape(self) -> tuple[Page, MessageStatus | None, MessageColumns, bool]:
        """Keys of the same shape are served by one statement."""
        return (self.page, self.status, self.columns, self.with_interactions)
