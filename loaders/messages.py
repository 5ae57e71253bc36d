"""Loaders of the messages domain: pages of messages per owner, counts, interactions.

A page of messages is built with everything its nodes were asked for — contacts in
the same statement (a join), interactions in one more — so that per-message fields
resolve from memory. Awaiting one `.load()` per message costs ~0.1 ms each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.pagination import Page
from app.db.reads import Rows
from app.interactions.repository import InteractionRepository
from app.messages.columns import ALL_COLUMNS, CONTACT_PREFIX, MessageColumns
from app.messages.repository import MessageRepository
from app.models import MessageStatus
from app.stats.repository import StatsRepository
from loaders.base import (
    SessionLoader,
    Types,
    group_by_owner,
    projected,
)


@dataclass(frozen=True)
class MessagePageKey:
    owner_id: int
    page: Page
    status: MessageStatus | None = None
    columns: MessageColumns = ALL_COLUMNS
    with_interactions: bool = False
    # A load hashes its keys about seven times (batch, cache, results): hashed once here.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hash", hash((self.owner_id, *self.shape())))

    def __hash__(self) -> int:
        return self._hash

    def shape(self) -> tuple[Page, MessageStatus | None, MessageColumns, bool]:
        """Keys of the same shape are served by one statement."""
        return (self.page, self.status, self.columns, self.with_interactions)


class MessageBuilder:
    """Messages from the rows of a page: their contacts come in the same rows (a join),
    their interactions in one more statement, so per-message fields resolve from memory."""

    def __init__(self, session: AsyncSession, types: Types) -> None:
        self.session = session
        self.types = types

    def columns(self, columns: MessageColumns) -> MessageColumns:
        """The columns to fetch for a page that selects `columns`."""
        return columns

    async def build(self, rows: Rows, with_contact: bool, with_interactions: bool) -> list[Any]:
        types = self.types
        records = rows.records
        build = projected(
            rows.fields, types.message, nested=(CONTACT_PREFIX, "contact", types.contact)
        )
        messages = build(records) if records else []
        if with_interactions:
            await self.add_interactions(messages)
        return messages

    async def add_interactions(self, messages: Sequence[Any]) -> None:
        """Set each message's interactions, read in one statement for all of them."""
        keys = [message.database_id for message in messages]
        rows = await InteractionRepository(self.session).by_message_ids(keys) if keys else []
        found = group_by_owner(rows, self.types.interaction.from_row)
        for message in messages:
            message.interactions = found.get(message.database_id, [])


class MessagePageLoader(SessionLoader[MessagePageKey, list[Any]]):
    def __init__(
        self, session: AsyncSession, types: Types, builder: MessageBuilder, **options: Any
    ) -> None:
        super().__init__(session, types, **options)
        self.builder = builder

    async def fetch(self, owners: list[int], key: MessagePageKey, columns: MessageColumns) -> Rows:
        raise NotImplementedError

    async def batch_load_fn(self, keys: Sequence[MessagePageKey]) -> list[list[Any]]:
        results: dict[MessagePageKey, list[Any]] = {}
        for shape in {key.shape() for key in keys}:
            group = [key for key in keys if key.shape() == shape]
            key = group[0]
            columns = self.builder.columns(key.columns)
            rows = await self.fetch([key.owner_id for key in group], key, columns)
            messages = await self.builder.build(
                rows, key.columns.contact is not None, key.with_interactions
            )
            by_owner: dict[int, list[Any]] = {}
            owner = rows.fields.index("owner_id")
            for row, message in zip(rows.records, messages, strict=True):
                by_owner.setdefault(row[owner], []).append(message)
            results.update({key: by_owner.get(key.owner_id, []) for key in group})
        return [results[key] for key in keys]


class MessagePageByCampaignIdLoader(MessagePageLoader):
    async def fetch(self, owners: list[int], key: MessagePageKey, columns: MessageColumns) -> Rows:
        return await MessageRepository(self.session).page_per_campaign(
            owners, key.status, key.page, columns
        )


class MessagePageByContactIdLoader(MessagePageLoader):
    async def fetch(self, owners: list[int], key: MessagePageKey, columns: MessageColumns) -> Rows:
        return await MessageRepository(self.session).page_per_contact(
            owners, key.status, key.page, columns
        )


class MessageByIdLoader(SessionLoader[int, Any]):
    """Whole messages with their contacts (`node(id:)`, or a page's projection that lacked
    a column), one statement; their interactions are not set (`add_interactions`)."""

    async def batch_load_fn(self, keys: Sequence[int]) -> list[Any]:
        rows = await MessageRepository(self.session).by_ids(keys)
        types = self.types
        build = projected(
            rows.fields, types.message, nested=(CONTACT_PREFIX, "contact", types.contact)
        )
        found = {message.database_id: message for message in build(rows.records)}
        return [found.get(key) for key in keys]


class InteractionByIdLoader(SessionLoader[int, Any]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[Any]:
        rows = await InteractionRepository(self.session).by_ids(keys)
        found = {row.id: self.types.interaction.from_row(row) for row in rows}
        return [found.get(key) for key in keys]


class MessageCountLoader(SessionLoader[tuple[int, MessageStatus | None], int]):
    async def count(self, owners: list[int], status: MessageStatus | None) -> dict[int, int]:
        raise NotImplementedError

    async def batch_load_fn(self, keys: Sequence[tuple[int, MessageStatus | None]]) -> list[int]:
        results: dict[tuple[int, MessageStatus | None], int] = {}
        for status in {status for _, status in keys}:
            owners = [owner for owner, s in keys if s == status]
            found = await self.count(owners, status)
            results.update({(owner, status): found.get(owner, 0) for owner in owners})
        return [results[key] for key in keys]


class MessageCountByCampaignIdLoader(MessageCountLoader):
    async def count(self, owners: list[int], status: MessageStatus | None) -> dict[int, int]:
        return await StatsRepository(self.session).message_counts(owners, status)


class MessageCountByContactIdLoader(MessageCountLoader):
    async def count(self, owners: list[int], status: MessageStatus | None) -> dict[int, int]:
        return await MessageRepository(self.session).count_per_contact(owners, status)


class InteractionsByContactIdLoader(SessionLoader[int, list[Any]]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[list[Any]]:
        rows = await InteractionRepository(self.session).by_contact_ids(keys)
        found = group_by_owner(rows, self.types.interaction.from_row)
        return [found.get(key, []) for key in keys]
