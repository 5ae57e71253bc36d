"""Campaign queries."""

from __future__ import annotations

import strawberry

from app.campaigns.repository import CampaignRepository
from app.stats.repository import StatsRepository
from schema.campaigns.types import PAUSE_COLUMNS, TEMPLATE_COLUMNS, CampaignType
from schema.common.enums import CampaignStatus
from schema.common.ids import key_of
from schema.common.pagination import Connection, page_args
from schema.common.selection import node_columns, per_field_node
from schema.context import Info
from schema.permissions import viewer


@strawberry.type
class CampaignQuery:
    # Not cached: a keyset page on the primary key costs less than a cache hit, and a
    # list read from PostgreSQL never shows a status older than the last change.
    @strawberry.field(description="Campaigns, newest first.", extensions=viewer())
    async def campaigns(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: CampaignStatus | None = None,
    ) -> Connection[CampaignType]:
        page = page_args(info.context.settings, first, after)
        repository = CampaignRepository(info.context.session)
        rows = await repository.page(status, page, per_field_node(info, "campaigns", _columns))
        count = StatsRepository(info.context.session).campaign_count  # from the counters
        return Connection.of(CampaignType.of_page(rows), page, lambda: count(status))

    @strawberry.field(extensions=viewer())
    async def campaign(self, info: Info, id: strawberry.ID) -> CampaignType | None:
        key = key_of(id, "Campaign", "id")
        return None if key is None else await info.context.loaders.campaign_by_id.load(key)


def _columns(info: Info) -> frozenset[str]:
    """The columns a page's nodes read: those selected, the template's for `template`, the
    pause's for `pauseReason`, the status for `stats` (cached only once its campaign is
    finished), and the sender number's id for `senderNumber` and `reach`."""
    names = node_columns(info)
    if "template" in names:
        names |= frozenset(TEMPLATE_COLUMNS)
    if "pause_reason" in names:
        names |= frozenset(PAUSE_COLUMNS)
    if "stats" in names:
        names |= {"status"}
    if "reach" in names:
        names |= {"status"}
    if names & {"sender_number", "reach"}:
        names |= {"sender_number_id"}
    return names
