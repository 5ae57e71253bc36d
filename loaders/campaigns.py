"""Loaders of the campaigns domain."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.campaigns.repository import CampaignRepository
from app.stats.repository import StatsRepository
from loaders.base import SessionLoader


class CampaignByIdLoader(SessionLoader[int, Any]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[Any]:
        rows = await CampaignRepository(self.session).by_ids(keys)
        found = {row.id: self.types.campaign.from_row(row) for row in rows}
        return [found.get(key) for key in keys]


class StatsByCampaignIdLoader(SessionLoader[int, Any]):
    """Status and interaction counts of many campaigns from their counters, one statement."""

    async def batch_load_fn(self, keys: Sequence[int]) -> list[Any]:
        rows = await StatsRepository(self.session).by_campaign_ids(keys)
        of = self.types.message_stats.of
        found = {row.campaign_id: of(row._asdict()) for row in rows}
        return [found.get(key) or of({}) for key in keys]
