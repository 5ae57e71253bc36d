"""All SQL about messages and the interactions they received (read side)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import (
    Row,
    Select,
    bindparam,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Contact, Interaction, Message, MessageStatus
from app.pagination import Page, page_parameters, page_per_parent
from app.reads import Rows, rows
from app.stats.repository import StatsRepository

messages = Message.__table__
contacts = Contact.__table__
interactions = Interaction.__table__

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


@lru_cache(maxsize=512)
def _page(columns: MessageColumns, filtered: bool, of_campaign: bool, after: bool) -> Select:
    """Query.messages: newest first, optionally of one campaign and in one status."""
    stmt = columns.select(filtered)
    if of_campaign:
        stmt = stmt.where(messages.c.campaign_id == bindparam("campaign_id"))
    if after:
        stmt = stmt.where(messages.c.id < bindparam("before_id"))
    return stmt.order_by(messages.c.id.desc()).limit(bindparam("limit"))


@lru_cache(maxsize=512)
def _page_per_owner(owner: str, columns: MessageColumns, filtered: bool, after: bool) -> Select:
    return page_per_parent(columns.select(filtered), messages.c[owner], messages.c.id, after)


def _status(status: MessageStatus | None) -> dict[str, object]:
    return {} if status is None else {"status": status}


class MessageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self,
        campaign_id: int | None,
        status: MessageStatus | None,
        page: Page,
        columns: MessageColumns,
    ) -> Rows:
        stmt = _page(
            columns, status is not None, campaign_id is not None, page.before_id is not None
        )
        values: dict[str, object] = {"limit": page.limit + 1, **_status(status)}
        if campaign_id is not None:
            values["campaign_id"] = campaign_id
        if page.before_id is not None:
            values["before_id"] = page.before_id
        return await rows(self.session, stmt, values)

    async def count(self, campaign_id: int | None, status: MessageStatus | None) -> int:
        """From the counters: constant time however many messages there are."""
        stats = StatsRepository(self.session)
        if campaign_id is None:
            return await stats.message_count(status)
        return (await stats.message_counts([campaign_id], status)).get(campaign_id, 0)

    async def page_per_campaign(
        self,
        campaign_ids: Sequence[int],
        status: MessageStatus | None,
        page: Page,
        columns: MessageColumns,
    ) -> Rows:
        return await self._page_per_owner("campaign_id", campaign_ids, status, page, columns)

    async def page_per_contact(
        self,
        contact_ids: Sequence[int],
        status: MessageStatus | None,
        page: Page,
        columns: MessageColumns,
    ) -> Rows:
        return await self._page_per_owner("contact_id", contact_ids, status, page, columns)

    async def _page_per_owner(
        self,
        owner: str,
        owner_ids: Sequence[int],
        status: MessageStatus | None,
        page: Page,
        columns: MessageColumns,
    ) -> Rows:
        stmt = _page_per_owner(owner, columns, status is not None, page.before_id is not None)
        values = page_parameters(owner_ids, page, **_status(status))
        return await rows(self.session, stmt, values)

    async def count_per_campaign(
        self, campaign_ids: Sequence[int], status: MessageStatus | None
    ) -> dict[int, int]:
        return await StatsRepository(self.session).message_counts(campaign_ids, status)

    async def count_per_contact(
        self, contact_ids: Sequence[int], status: MessageStatus | None
    ) -> dict[int, int]:
        stmt = select(messages.c.contact_id, func.count()).where(
            messages.c.contact_id.in_(contact_ids)
        )
        if status is not None:
            stmt = stmt.where(messages.c.status == status)
        rows = await self.session.execute(stmt.group_by(messages.c.contact_id))
        return {cid: n for cid, n in rows.all()}

    async def interactions_by_message_ids(self, message_ids: Sequence[int]) -> Sequence[Row]:
        stmt = (
            select(interactions.c.message_id.label("owner_id"), interactions)
            .where(interactions.c.message_id.in_(message_ids))
            .order_by(interactions.c.id)
        )
        return (await self.session.execute(stmt)).all()

    async def interactions_by_contact_ids(self, contact_ids: Sequence[int]) -> Sequence[Row]:
        stmt = (
            select(messages.c.contact_id.label("owner_id"), interactions)
            .join(messages, messages.c.id == interactions.c.message_id)
            .where(messages.c.contact_id.in_(contact_ids))
            .order_by(interactions.c.id)
        )
        return (await self.session.execute(stmt)).all()
