"""retryFailedMessages: send failed messages again, on purpose (never automatically)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.campaigns.service import CampaignDispatchService
from schema.campaigns.types import CampaignType
from schema.common.errors import InvalidStateError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import after_commit, savepoint
from schema.context import Info
from schema.permissions import admin


@strawberry.type
class RetryFailedMessagesSuccess:
    campaign: CampaignType
    retried: int = strawberry.field(description="Messages put back to pending.")
    marketing_limited: int = strawberry.field(
        description="Failed messages left alone: WhatsApp's per-user marketing limit (131049) "
        "refused them within the last 24 hours (see includeMarketingLimited)."
    )


RetryFailedMessagesResult = Annotated[
    RetryFailedMessagesSuccess | NotFoundError | InvalidStateError,
    strawberry.union("RetryFailedMessagesResult"),
]


@strawberry.type
class RetryFailedMessagesMutation:
    @strawberry.mutation(
        description="Put the failed messages of a sending, paused or completed campaign back "
        "to pending (except undeliverable numbers and opted-out contacts, and messages "
        "refused at the per-user marketing limit in the last 24 hours unless "
        "includeMarketingLimited); a completed campaign goes back to sending.",
        extensions=admin(),
    )
    @savepoint
    async def retry_failed_messages(
        self,
        info: Info,
        id: strawberry.ID,
        include_marketing_limited: Annotated[
            bool,
            strawberry.argument(
                description="Also re-send messages WhatsApp refused at the per-user "
                "marketing limit (131049) in the last 24 hours: they will likely be refused "
                "again."
            ),
        ] = False,
    ) -> RetryFailedMessagesResult:
        campaign_id = parse_id(id, "Campaign", "id")
        service = CampaignDispatchService(info.context.session)
        retried = await service.retry_failed(campaign_id, include_marketing_limited)
        if retried.messages:
            after_commit(info, info.context.jobs.materialize, campaign_id)
        return RetryFailedMessagesSuccess(
            campaign=CampaignType.from_row(retried.campaign),
            retried=retried.messages,
            marketing_limited=retried.held_back,
        )
