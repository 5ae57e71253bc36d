"""Loaders of the messages domain: pages of messages per owner, counts, interactions.

A page of messages is built with everything its nodes were asked for — contacts in
the same statement (a join), interactions in one more — so that per-message fields
resolve from memory. Awaiting one `.load()` per message costs ~0.1 ms each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.repository import ContactRepository
from app.messages.repository import CONTACT_PREFIX, MessageColumns, MessageRepository
from app.models import MessageStatus
from loaders.base import SessionLoader, group_by_owner
from loaders.keys import MessagePageKey
from schema.contacts.types import ContactType
from schema.messages.types import InteractionType, MessageType


def _values(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Each row as name → value; the columns the query did not select are absent.

    Zipping the field names once per row is cheap; Row's own mapping views cost more
    than the rest of building a page.
    """
    fields = rows[0]._fields if rows else ()
    return [dict(zip(fields, row, strict=True)) for row in rows]


async def build_messages(
    session: AsyncSession,
    rows: Sequence[Row],
    with_contact: bool,
    with_interactions: bool,
    naive: bool = False,
) -> list[MessageType]:
    """Messages from page rows (joined with their contacts when `with_contact`), plus
    their interactions when `with_interactions`.

    `naive` instead looks up each message's contact and interactions one statement at
    a time, as the audited REST API did; it exists so benchmarks can show the ratio.
    """
    if naive:
        return await _build_messages_naively(session, rows, with_contact, with_interactions)
    messages = [
        MessageType.from_values(
            row, ContactType.from_prefixed_values(row, CONTACT_PREFIX) if with_contact else None
        )
        for row in _values(rows)
    ]
    if with_interactions:
        found = group_by_owner(
            await MessageRepository(session).interactions_by_message_ids(
                [int(message.id) for message in messages]
            )
            if messages
            else [],
            InteractionType.from_row,
        )
        for message in messages:
            message.interactions = found.get(int(message.id), [])
    return messages


async def _build_messages_naively(
    session: AsyncSession, rows: Sequence[Row], with_contact: bool, with_interactions: bool
) -> list[MessageType]:
    messages = [MessageType.from_values(row) for row in _values(rows)]
    for message in messages:
        if with_contact:
            [contact] = await ContactRepository(session).by_ids([message.contact_id])
            message.contact = ContactType.from_row(contact)
        if with_interactions:
            found = await MessageRepository(session).interactions_by_message_ids([int(message.id)])
            message.interactions = [InteractionType.from_row(row) for row in found]
    return messages


def fetch_columns(columns: MessageColumns, naive: bool) -> MessageColumns:
    """The naive baseline fetches each contact on its own, never in the page's join."""
    return columns.without_contact() if naive else columns


class _MessagePageLoader(SessionLoader[MessagePageKey, list[MessageType]]):
    async def fetch(self, owners: list[int], key: MessagePageKey) -> Sequence[Row]:
        raise NotImplementedError

    async def batch_load_fn(self, keys: Sequence[MessagePageKey]) -> list[list[MessageType]]:
        results: dict[MessagePageKey, list[MessageType]] = {}
        for shape in {key.shape() for key in keys}:
            group = [key for key in keys if key.shape() == shape]
            rows = await self.fetch([key.owner_id for key in group], group[0])
            key = group[0]
            messages = await build_messages(
                self.session,
                rows,
                key.columns.contact is not None,
                key.with_interactions,
                self.naive,
            )
            by_owner: dict[int, list[MessageType]] = {}
            for row, message in zip(rows, messages, strict=True):
                by_owner.setdefault(row.owner_id, []).append(message)
            results.update({key: by_owner.get(key.owner_id, []) for key in group})
        return [results[key] for key in keys]


class MessagePageByCampaignIdLoader(_MessagePageLoader):
    async def fetch(self, owners: list[int], key: MessagePageKey) -> Sequence[Row]:
        return await MessageRepository(self.session).page_per_campaign(
            owners, key.status, key.page, fetch_columns(key.columns, self.naive)
        )


class MessagePageByContactIdLoader(_MessagePageLoader):
    async def fetch(self, owners: list[int], key: MessagePageKey) -> Sequence[Row]:
        return await MessageRepository(self.session).page_per_contact(
            owners, key.status, key.page, fetch_columns(key.columns, self.naive)
        )


class _MessageCountLoader(SessionLoader[tuple[int, MessageStatus | None], int]):
    async def count(self, owners: list[int], status: MessageStatus | None) -> dict[int, int]:
        raise NotImplementedError

    async def batch_load_fn(self, keys: Sequence[tuple[int, MessageStatus | None]]) -> list[int]:
        results: dict[tuple[int, MessageStatus | None], int] = {}
        for status in {status for _, status in keys}:
            owners = [owner for owner, s in keys if s == status]
            found = await self.count(owners, status)
            results.update({(owner, status): found.get(owner, 0) for owner in owners})
        return [results[key] for key in keys]


class MessageCountByCampaignIdLoader(_MessageCountLoader):
    async def count(self, owners: list[int], status: MessageStatus | None) -> dict[int, int]:
        return await MessageRepository(self.session).count_per_campaign(owners, status)


class MessageCountByContactIdLoader(_MessageCountLoader):
    async def count(self, owners: list[int], status: MessageStatus | None) -> dict[int, int]:
        return await MessageRepository(self.session).count_per_contact(owners, status)


class InteractionsByContactIdLoader(SessionLoader[int, list[InteractionType]]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[list[InteractionType]]:
        rows = await MessageRepository(self.session).interactions_by_contact_ids(keys)
        found = group_by_owner(rows, InteractionType.from_row)
        return [found.get(key, []) for key in keys]
