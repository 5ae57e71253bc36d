"""Loaders of the campaigns domain."""

from __future__ import annotations

from collections.abc import Sequence

from app.campaigns.repository import CampaignRepository
from app.stats.repository import StatsRepository
from loaders.base import SessionLoader
from schema.campaigns.types import CampaignType, MessageStats


class CampaignByIdLoader(SessionLoader[int, CampaignType | None]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[CampaignType | None]:
        rows = await CampaignRepository(self.session).by_ids(keys)
        found = {row.id: CampaignType.from_row(row) for row in rows}
        return [found.get(key) for key in keys]


class StatsByCampaignIdLoader(SessionLoader[int, MessageStats]):
    """Status and interaction counts of many campaigns from their counters, one statement."""

    async def batch_load_fn(self, keys: Sequence[int]) -> list[MessageStats]:
        rows = await StatsRepository(self.session).by_campaign_ids(keys)
        found = {row.campaign_id: MessageStats.of(row._mapping) for row in rows}
        return [found.get(key) or MessageStats.of({}) for key in keys]
