"""Loaders of the campaigns domain."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from app.campaigns.repository import CampaignRepository
from app.messages.repository import MessageRepository
from loaders.base import SessionLoader
from schema.campaigns.types import CampaignType, MessageStats


class CampaignByIdLoader(SessionLoader[int, CampaignType | None]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[CampaignType | None]:
        rows = await CampaignRepository(self.session).by_ids(keys)
        found = {row.id: CampaignType.from_row(row) for row in rows}
        return [found.get(key) for key in keys]


class StatsByCampaignIdLoader(SessionLoader[int, MessageStats]):
    """Status and interaction counts of many campaigns in one grouped statement."""

    async def batch_load_fn(self, keys: Sequence[int]) -> list[MessageStats]:
        counts: dict[int, dict[str, int]] = defaultdict(dict)
        for row in await MessageRepository(self.session).status_counts(keys):
            counts[row.campaign_id][row.status] = row.n
        return [MessageStats.of(counts.get(key, {})) for key in keys]
