"""Which columns a page of messages selects, and the SELECT that fetches just those."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import Select, bindparam, select

from app.db.pagination import page_per_parent
from app.models import Contact, Message

messages = Message.__table__
contacts = Contact.__table__

# Contact columns travel with messages as `contact__<name>` so a page of messages and
# their contacts arrive in one statement.
CONTACT_PREFIX = "contact__"
MESSAGE_KEYS = frozenset({"id", "campaign_id", "contact_id"})


@dataclass(frozen=True)
class MessageColumns:
    """The columns a page of messages needs: what the query selects, plus the keys.

    Decoding columns nobody asked for (jsonb attributes, timestamps) was most of the
    cost of a 1,000-message page. `message=None` means every column; `contact=None`
    means no join with contacts at all. Build with `of()`, which keeps real columns only.
    """

    message: frozenset[str] | None = None
    contact: frozenset[str] | None = None

    @classmethod
    def of(cls, message: Iterable[str], contact: Iterable[str] | None) -> MessageColumns:
        return cls(
            frozenset(message) & MESSAGE_COLUMNS | MESSAGE_KEYS,
            None if contact is None else frozenset(contact) & CONTACT_COLUMNS | {"id"},
        )

    def without_contact(self) -> MessageColumns:
        return MessageColumns(self.message, None)

    def select(self, filtered: bool) -> Select:
        """The page's SELECT; `filtered` adds `status = :status`."""
        wanted = (
            messages.c
            if self.message is None
            else [c for c in messages.c if c.name in self.message]
        )
        if self.contact is None:
            stmt = select(*wanted)
        else:
            joined = [c for c in contacts.c if c.name in self.contact]
            stmt = select(*wanted, *(c.label(CONTACT_PREFIX + c.name) for c in joined)).join(
                contacts, contacts.c.id == messages.c.contact_id
            )
        return stmt.where(messages.c.status == bindparam("status")) if filtered else stmt


MESSAGE_COLUMNS = frozenset(messages.c.keys())
CONTACT_COLUMNS = frozenset(contacts.c.keys())
ALL_COLUMNS = MessageColumns()
WHOLE = MessageColumns(None, CONTACT_COLUMNS)  # every column, the contact's too


@lru_cache(maxsize=512)
def page_select(columns: MessageColumns, filtered: bool, of_campaign: bool, after: bool) -> Select:
    """Query.messages: newest first, optionally of one campaign and in one status."""
    stmt = columns.select(filtered)
    if of_campaign:
        stmt = stmt.where(messages.c.campaign_id == bindparam("campaign_id"))
    if after:
        stmt = stmt.where(messages.c.id < bindparam("before_id"))
    return stmt.order_by(messages.c.id.desc()).limit(bindparam("limit"))


@lru_cache(maxsize=512)
def page_per_owner_select(
    owner: str, columns: MessageColumns, filtered: bool, after: bool
) -> Select:
    return page_per_parent(columns.select(filtered), messages.c[owner], messages.c.id, after)
