"""Message queries, including the global statistics."""

from __future__ import annotations

import strawberry

from app.messages.repository import MessageRepository
from app.stats.repository import StatsRepository
from schema.cache import Cached
from schema.campaigns.types import MessageStats
from schema.common.enums import MessageStatus
from schema.common.ids import key_of
from schema.common.pagination import Connection, page_args
from schema.context import Info
from schema.messages.columns import message_page_shape
from schema.messages.types import MessageType
from schema.permissions import viewer


@strawberry.type
class MessageQuery:
    @strawberry.field(
        description="Messages, newest first, optionally of one campaign.", extensions=viewer()
    )
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        campaign_id: strawberry.ID | None = None,
        status: MessageStatus | None = None,
    ) -> Connection[MessageType]:
        page = page_args(info.context.settings, first, after)
        campaign = None if campaign_id is None else key_of(campaign_id, "Campaign", "campaignId")
        if campaign_id is not None and campaign is None:  # another type's id: no campaign
            return Connection.empty(page)
        columns, with_interactions = message_page_shape(info)
        builder = info.context.loaders.messages
        repository = MessageRepository(info.context.session)
        rows = await repository.page(campaign, status, page, builder.columns(columns))
        nodes = await builder.build(rows, columns.contact is not None, with_interactions)
        count = StatsRepository(info.context.session).message_count  # from the counters
        return Connection.of(nodes, page, lambda: count(campaign, status))

    @strawberry.field(
        description="Counts of all messages per status, from counters kept with every change.",
        extensions=[Cached("stats"), *viewer()],
    )
    async def message_stats(self, info: Info) -> MessageStats:
        totals = await StatsRepository(info.context.session).totals()
        return MessageStats.of(totals._asdict())
