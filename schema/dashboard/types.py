"""GraphQL types of the dashboard."""

from __future__ import annotations

from typing import Any

import strawberry

from app.campaigns.repository import CampaignRepository
from schema.cache import Cached
from schema.campaigns.types import CampaignType, MessageStats
from schema.common.enums import CampaignStatus
from schema.common.pagination import BadInputError
from schema.context import Info

RECENT_MAX = 20


@strawberry.type
class CampaignStatusCount:
    status: CampaignStatus
    count: int


@strawberry.type
class Dashboard:
    """The audit's consolidated dashboard: every count comes from one statement."""

    contact_count: int
    opted_out_contact_count: int
    category_count: int
    campaign_count: int
    campaigns_by_status: list[CampaignStatusCount]
    message_stats: MessageStats

    @classmethod
    def of(cls, totals: dict[str, Any]) -> Dashboard:
        by_status = [
            CampaignStatusCount(status=status, count=totals["campaigns"].get(status.value, 0))
            for status in CampaignStatus
        ]
        return cls(
            contact_count=totals["contacts"],
            opted_out_contact_count=totals["opted_out"],
            category_count=totals["categories"],
            campaign_count=sum(item.count for item in by_status),
            campaigns_by_status=by_status,
            message_stats=MessageStats.of(totals["messages"]),
        )

    @strawberry.field(
        description="The latest campaigns, newest first.",
        extensions=[
            # The dashboard is one object: its recent campaigns share one key.
            Cached("campaigns", ttl=lambda s: s.cache_ttl_campaigns_list, key=lambda _: "dashboard")
        ],
    )
    async def recent_campaigns(self, info: Info, first: int = 5) -> list[CampaignType]:
        if not 0 <= first <= RECENT_MAX:
            raise BadInputError(f"first must be between 0 and {RECENT_MAX}, got {first}", "first")
        rows = await CampaignRepository(info.context.session).recent(first)
        return [CampaignType.from_row(row) for row in rows]
