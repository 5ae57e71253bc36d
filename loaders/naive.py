"""The audited API's N+1 access, for benchmarks only (`HERALD_NAIVE_RESOLVERS`).

Loaders that neither batch nor memoize, and message pages whose contacts and
interactions are looked up one statement per message, as the audited REST API did. The
context picks them and `NoCache` instead of `Loaders` and the field cache in one place,
`schema/context.py`; nothing else knows this mode exists.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Any

from app.cache import MISS, Entry, RequestCache, Stamp
from app.contacts.repository import ContactRepository
from app.db.reads import Rows
from app.interactions.repository import InteractionRepository
from app.messages.columns import MessageColumns
from loaders.messages import MessageBuilder
from loaders.registry import Loaders


class NaiveMessageBuilder(MessageBuilder):
    def columns(self, columns: MessageColumns) -> MessageColumns:
        return columns.without_contact()  # each contact is fetched on its own

    async def build(self, rows: Rows, with_contact: bool, with_interactions: bool) -> list[Any]:
        types = self.types
        messages = await super().build(rows, with_contact=False, with_interactions=False)
        for message in messages:
            if with_contact:
                [contact] = await ContactRepository(self.session).by_ids([message.contact_id])
                message.contact = types.contact.from_row(contact)
            if with_interactions:
                found = await InteractionRepository(self.session).by_message_ids(
                    [message.database_id]
                )
                message.interactions = [types.interaction.from_row(row) for row in found]
        return messages


class NoCache(RequestCache):
    """Every lookup misses and nothing is stored, as when Redis is down."""

    async def lookup(
        self, entry: Entry, usable: Callable[[Any], bool] | None = None
    ) -> tuple[Any, Stamp | None]:
        return MISS, None


class NaiveLoaders(Loaders):
    options = {"batch": False, "cache": False}  # one statement per key, no memo

    @cached_property
    def messages(self) -> MessageBuilder:
        return NaiveMessageBuilder(self.session, self.types)
