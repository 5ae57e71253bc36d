"""retryFailedMessages: send failed messages again, on purpose (never automatically)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.campaigns.service import CampaignDispatchService
from schema.cache import campaign_changed
from schema.campaigns.types import CampaignType
from schema.common.errors import InvalidStateError, NotFoundError
from schema.common.mutations import after_commit, savepoint
from schema.common.pagination import parse_id
from schema.context import Info
from schema.permissions import admin


@strawberry.type
class RetryFailedMessagesSuccess:
    campaign: CampaignType
    retried: int = strawberry.field(description="Messages put back to pending.")


RetryFailedMessagesResult = Annotated[
    RetryFailedMessagesSuccess | NotFoundError | InvalidStateError,
    strawberry.union("RetryFailedMessagesResult"),
]


@strawberry.type
class RetryFailedMessagesMutation:
    @strawberry.mutation(
        description="Put the failed messages of a sending, paused or completed campaign back "
        "to pending (except undeliverable numbers and opted-out contacts); a completed "
        "campaign goes back to sending.",
        extensions=admin(),
    )
    @savepoint
    async def retry_failed_messages(
        self, info: Info, id: strawberry.ID
    ) -> RetryFailedMessagesResult:
        campaign_id = parse_id(id, "id")
        retried = await CampaignDispatchService(info.context.session).retry_failed(campaign_id)
        if retried.messages:
            after_commit(info, info.context.jobs.materialize, campaign_id)
        campaign_changed(info.context)  # lists and dashboard show the status
        return RetryFailedMessagesSuccess(
            campaign=CampaignType.from_row(retried.campaign), retried=retried.messages
        )
