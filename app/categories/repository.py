"""All SQL about categories and their memberships."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    Row,
    Select,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.pagination import Page
from app.db.reads import in_ids, rows
from app.errors import Duplicate
from app.models import Campaign, CampaignStatus, Category, campaign_categories, category_contacts

categories = Category.__table__
campaigns = Campaign.__table__
# Campaigns whose recipients may still be (re)computed from their target categories.
ACTIVE_CAMPAIGN_STATUSES = (CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.PAUSED)
# Core's insert/update/delete take a Table; `__table__` is typed as the wider FromClause.
_table = cast(Table, categories)


def _page(after: bool) -> Select:
    """Categories newest first, below a cursor or not: reads are built once (app/db/reads.py)."""
    stmt = select(categories)
    if after:
        stmt = stmt.where(categories.c.id < bindparam("before_id"))
    return stmt.order_by(categories.c.id.desc()).limit(bindparam("limit"))


_PAGE = {after: _page(after) for after in (False, True)}
_BY_IDS = select(categories).where(in_ids(categories.c.id))


def _by_owner(link: Table, owner: Column[int]) -> Select:
    return (
        select(owner.label("owner_id"), categories)
        .join(categories, categories.c.id == link.c.category_id)
        .where(in_ids(owner))
        .order_by(categories.c.name)
    )


_BY_CONTACTS = _by_owner(category_contacts, category_contacts.c.contact_id)
_BY_CAMPAIGNS = _by_owner(campaign_categories, campaign_categories.c.campaign_id)
_CONTACT_COUNTS = (
    select(category_contacts.c.category_id, func.count())
    .where(in_ids(category_contacts.c.category_id))
    .group_by(category_contacts.c.category_id)
)


class CategoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(self, page: Page) -> Sequence[Any]:
        return (await rows(self.session, _PAGE[page.before_id is not None], page.values())).named()

    async def by_ids(self, ids: Sequence[int]) -> Sequence[Any]:
        return (await rows(self.session, _BY_IDS, {"ids": list(ids)})).named()

    async def by_contact_ids(self, contact_ids: Sequence[int]) -> Sequence[Any]:
        """Categories of each contact, as rows carrying `owner_id` (the contact)."""
        return (await rows(self.session, _BY_CONTACTS, {"ids": list(contact_ids)})).named()

    async def by_campaign_ids(self, campaign_ids: Sequence[int]) -> Sequence[Any]:
        """Target categories of each campaign, as rows carrying `owner_id` (the campaign)."""
        return (await rows(self.session, _BY_CAMPAIGNS, {"ids": list(campaign_ids)})).named()

    async def contact_counts(self, category_ids: Sequence[int]) -> dict[int, int]:
        """Members per category in one grouped statement (the audit's batched count)."""
        found = await rows(self.session, _CONTACT_COUNTS, {"ids": list(category_ids)})
        return {cid: n for cid, n in found.records}

    # -- writes ---------------------------------------------------------------------------

    async def insert(self, name: str, description: str | None) -> Row | None:
        """The new category, or None when the name is taken (also under a concurrent insert)."""
        stmt = (
            pg_insert(_table)
            .values(name=name, description=description)
            .on_conflict_do_nothing(index_elements=[categories.c.name])
            .returning(categories)
        )
        return (await self.session.execute(stmt)).first()

    async def update(self, category_id: int, values: Mapping[str, Any]) -> Row | None:
        """Apply column values; None if the category does not exist. A taken name → Duplicate."""
        stmt = (
            update(_table)
            .where(categories.c.id == category_id)
            .values(**values, updated_at=func.now())
            .returning(categories)
        )
        try:
            return (await self.session.execute(stmt)).first()
        except IntegrityError as exc:
            # The unique index decides, so two concurrent renames cannot both win.
            cause = getattr(exc.orig, "__cause__", None)
            if getattr(cause, "constraint_name", None) == NAME_UNIQUE:
                raise Duplicate("Category", "name", values["name"]) from None
            raise

    async def delete(self, category_id: int) -> bool:
        """Memberships and campaign targets go with it (ON DELETE CASCADE)."""
        stmt = delete(_table).where(categories.c.id == category_id).returning(categories.c.id)
        return (await self.session.execute(stmt)).first() is not None

    async def active_campaigns_targeting(self, category_id: int) -> list[int]:
        """Ids of scheduled, sending or paused campaigns that still target this category."""
        stmt = (
            select(campaigns.c.id)
            .join(campaign_categories, campaign_categories.c.campaign_id == campaigns.c.id)
            .where(
                campaign_categories.c.category_id == category_id,
                campaigns.c.status.in_(ACTIVE_CAMPAIGN_STATUSES),
            )
            .order_by(campaigns.c.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def get_shared(self, category_id: int) -> Row | None:
        """The category, locked against deletion until the transaction ends."""
        stmt = (
            select(categories).where(categories.c.id == category_id).with_for_update(key_share=True)
        )
        return (await self.session.execute(stmt)).first()

    async def existing_ids(self, ids: Sequence[int]) -> set[int]:
        """Which of `ids` exist, locked against deletion so a membership cannot lose its FK."""
        stmt = (
            select(categories.c.id).where(categories.c.id.in_(ids)).with_for_update(key_share=True)
        )
        return set((await self.session.execute(stmt)).scalars())

    async def add_members(
        self, category_ids: Sequence[int], contact_ids: Sequence[int]
    ) -> Membership:
        """Every contact joins every category, in one statement; existing pairs are kept.

        Reports which categories exist, so the caller can refuse unknown ones (its
        savepoint then undoes this and whatever came before). Contacts must exist.
        """
        if not category_ids:
            return Membership(found=set(), added=0)
        params = {"categories": list(category_ids), "contacts": list(contact_ids)}
        row = (await self.session.execute(_ADD_MEMBERS, params)).one()
        return Membership(found=set(row.found or ()), added=row.added)

    async def remove_members(self, category_id: int, contact_ids: Sequence[int]) -> int:
        stmt = delete(category_contacts).where(
            category_contacts.c.category_id == category_id,
            category_contacts.c.contact_id.in_(contact_ids),
        )
        return int((await self.session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


NAME_UNIQUE = "uq_categories_name"


@dataclass(frozen=True)
class Membership:
    found: set[int]  # the requested categories that exist
    added: int  # new (category, contact) pairs


# FOR KEY SHARE keeps the found categories from being deleted before the transaction ends.
_ADD_MEMBERS = text(
    """
    WITH cat AS (
        SELECT id FROM categories WHERE id = ANY(:categories) FOR KEY SHARE
    ), added AS (
        INSERT INTO category_contacts (category_id, contact_id)
        SELECT cat.id, con.id FROM cat CROSS JOIN unnest(:contacts) AS con(id)
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT (SELECT array_agg(id) FROM cat) AS found, (SELECT count(*) FROM added) AS added
    """
).bindparams(
    bindparam("categories", type_=ARRAY(BigInteger)),
    bindparam("contacts", type_=ARRAY(BigInteger)),
)
