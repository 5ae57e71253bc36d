"""All SQL about campaigns (read side)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Campaign, CampaignStatus
from app.pagination import Page, apply_page

campaigns = Campaign.__table__


class CampaignRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(self, status: CampaignStatus | None, page: Page) -> Sequence[Row]:
        stmt = select(campaigns)
        if status is not None:
            stmt = stmt.where(campaigns.c.status == status)
        return (await self.session.execute(apply_page(stmt, campaigns.c.id, page))).all()

    async def count(self, status: CampaignStatus | None) -> int:
        stmt = select(func.count()).select_from(campaigns)
        if status is not None:
            stmt = stmt.where(campaigns.c.status == status)
        return (await self.session.execute(stmt)).scalar_one()

    async def by_ids(self, ids: Sequence[int]) -> Sequence[Row]:
        stmt = select(campaigns).where(campaigns.c.id.in_(ids))
        return (await self.session.execute(stmt)).all()

    async def recent(self, limit: int) -> Sequence[Row]:
        stmt = select(campaigns).order_by(campaigns.c.id.desc()).limit(limit)
        return (await self.session.execute(stmt)).all()
