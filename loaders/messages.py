"""Loaders of the messages domain: pages of messages per owner, counts, interactions.

A page of messages is built with everything its nodes were asked for — contacts in
the same statement (a join), interactions in one more — so that per-message fields
resolve from memory. Awaiting one `.load()` per message costs ~0.1 ms each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.contacts.repository import ContactRepository
from app.db import Rows
from app.messages.repository import CONTACT_PREFIX, MessageColumns, MessageRepository
from app.models import MessageStatus, WhatsAppStatus
from loaders.base import SessionLoader, group_by_owner
from loaders.keys import MessagePageKey
from schema.contacts.types import ContactType
from schema.messages.types import InteractionType, MessageType


def _messages(rows: Rows) -> list[MessageType]:
    """Messages (with their contacts when the rows carry `contact__*` columns) from page
    rows; an `owner_id` column (the page's parent) is left out."""
    return _builder(rows.fields)(rows.records) if rows.records else []


# Enum columns of a page (message status, contact WhatsApp status): value → member.
_ENUMS: dict[str, dict[Any, Any]] = {
    "status": dict(MessageStatus._value2member_map_),
    "whatsapp_status": dict(WhatsAppStatus._value2member_map_),
}


@lru_cache(maxsize=256)
def _builder(fields: tuple[str, ...]) -> Callable[[Sequence[Row]], list[MessageType]]:
    """A function building the objects of one page shape (the columns a query selects).

    Objects get exactly the selected columns as attributes, set in one go: a resolver that
    reads a column the query did not select fails with AttributeError instead of reading a
    silent None. The function is generated once per shape, with the row indexes written
    into dict displays: dataclass constructors, `dict(zip(...))` and Row's mapping views
    each cost more than the rest of building a 1,000-message page.
    """
    message: list[str] = []
    contact: list[str] = []
    for index, name in enumerate(fields):
        if name == "owner_id":
            continue
        attribute = name.removeprefix(CONTACT_PREFIX)
        value = f"str(row[{index}])" if attribute == "id" else f"row[{index}]"
        if attribute in _ENUMS:  # driver rows carry the value, SQLAlchemy's the member
            value = f"{attribute}[{value}]"
        (contact if name.startswith(CONTACT_PREFIX) else message).append(f"{attribute!r}: {value}")
    body = ["def build(rows):", "    built = []", "    for row in rows:"]
    if contact:
        body += [
            "        contact = new(Contact)",
            f"        contact.__dict__ = {{{', '.join(contact)}}}",
        ]
        message.append("'contact': contact")
    body += [
        "        message = new(Message)",
        f"        message.__dict__ = {{{', '.join(message)}}}",
        "        built.append(message)",
        "    return built",
    ]
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "Contact": ContactType,
        "Message": MessageType,
        **_ENUMS,
    }
    exec("\n".join(body), namespace)  # the names are the repository's own column names
    build: Callable[[Sequence[Row]], list[MessageType]] = namespace["build"]
    return build


async def build_messages(
    session: AsyncSession,
    rows: Rows,
    with_contact: bool,
    with_interactions: bool,
    naive: bool = False,
) -> list[MessageType]:
    """Messages from page rows (joined with their contacts when the page asked for
    them), plus their interactions when `with_interactions`.

    `naive` instead looks up each message's contact and interactions one statement at
    a time, as the audited REST API did; it exists so benchmarks can show the ratio.
    """
    if naive:
        return await _build_messages_naively(session, rows, with_contact, with_interactions)
    messages = _messages(rows)
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
    session: AsyncSession, rows: Rows, with_contact: bool, with_interactions: bool
) -> list[MessageType]:
    messages = _messages(rows)
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


class MessagePageLoader(SessionLoader[MessagePageKey, list[MessageType]]):
    async def fetch(self, owners: list[int], key: MessagePageKey) -> Rows:
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
            owner = rows.fields.index("owner_id")
            for row, message in zip(rows.records, messages, strict=True):
                by_owner.setdefault(row[owner], []).append(message)
            results.update({key: by_owner.get(key.owner_id, []) for key in group})
        return [results[key] for key in keys]


class MessagePageByCampaignIdLoader(MessagePageLoader):
    async def fetch(self, owners: list[int], key: MessagePageKey) -> Rows:
        return await MessageRepository(self.session).page_per_campaign(
            owners, key.status, key.page, fetch_columns(key.columns, self.naive)
        )


class MessagePageByContactIdLoader(MessagePageLoader):
    async def fetch(self, owners: list[int], key: MessagePageKey) -> Rows:
        return await MessageRepository(self.session).page_per_contact(
            owners, key.status, key.page, fetch_columns(key.columns, self.naive)
        )


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
        return await MessageRepository(self.session).count_per_campaign(owners, status)


class MessageCountByContactIdLoader(MessageCountLoader):
    async def count(self, owners: list[int], status: MessageStatus | None) -> dict[int, int]:
        return await MessageRepository(self.session).count_per_contact(owners, status)


class InteractionsByContactIdLoader(SessionLoader[int, list[InteractionType]]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[list[InteractionType]]:
        rows = await MessageRepository(self.session).interactions_by_contact_ids(keys)
        found = group_by_owner(rows, InteractionType.from_row)
        return [found.get(key, []) for key in keys]
