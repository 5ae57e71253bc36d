"""All SQL about categories and their memberships."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Category, campaign_categories, category_contacts
from app.pagination import Page, apply_page

categories = Category.__table__


class CategoryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(self, page: Page) -> Sequence[Row]:
        stmt = apply_page(select(categories), categories.c.id, page)
        return (await self.session.execute(stmt)).all()

    async def count(self) -> int:
        stmt = select(func.count()).select_from(categories)
        return (await self.session.execute(stmt)).scalar_one()

    async def by_ids(self, ids: Sequence[int]) -> Sequence[Row]:
        stmt = select(categories).where(categories.c.id.in_(ids))
        return (await self.session.execute(stmt)).all()

    async def by_contact_ids(self, contact_ids: Sequence[int]) -> Sequence[Row]:
        """Categories of each contact, as rows carrying `owner_id` (the contact)."""
        stmt = (
            select(category_contacts.c.contact_id.label("owner_id"), categories)
            .join(categories, categories.c.id == category_contacts.c.category_id)
            .where(category_contacts.c.contact_id.in_(contact_ids))
            .order_by(categories.c.name)
        )
        return (await self.session.execute(stmt)).all()

    async def by_campaign_ids(self, campaign_ids: Sequence[int]) -> Sequence[Row]:
        """Target categories of each campaign, as rows carrying `owner_id` (the campaign)."""
        stmt = (
            select(campaign_categories.c.campaign_id.label("owner_id"), categories)
            .join(categories, categories.c.id == campaign_categories.c.category_id)
            .where(campaign_categories.c.campaign_id.in_(campaign_ids))
            .order_by(categories.c.name)
        )
        return (await self.session.execute(stmt)).all()

    async def contact_counts(self, category_ids: Sequence[int]) -> dict[int, int]:
        """Members per category in one grouped statement (the audit's batched count)."""
        stmt = (
            select(category_contacts.c.category_id, func.count())
            .where(category_contacts.c.category_id.in_(category_ids))
            .group_by(category_contacts.c.category_id)
        )
        return {cid: n for cid, n in (await self.session.execute(stmt)).all()}
