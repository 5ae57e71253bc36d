"""retryFailedMessages: send failed messages again, on purpose (never automatically)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.campaigns.dispatch_service import CampaignDispatchService
from app.dispatch.jobs import jobs_for
from app.errors import InvalidState, NotFound
from schema.cache import campaign_changed
from schema.campaigns.types import CampaignType
from schema.common.errors import InvalidStateError, NotFoundError
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
    async def retry_failed_messages(
        self, info: Info, id: strawberry.ID
    ) -> RetryFailedMessagesResult:
        campaign_id = parse_id(id, "id")
        try:
            async with info.context.session.begin_nested():
                retried = await CampaignDispatchService(info.context.session).retry_failed(
                    campaign_id
                )
        except NotFound as exc:
            return NotFoundError.of(exc)
        except InvalidState as exc:
            return InvalidStateError.of(exc)
        if retried.messages:
            jobs = jobs_for(info.context.settings)

            async def enqueue() -> None:
                jobs.materialize(campaign_id)

            info.context.on_commit(enqueue)
        campaign_changed(info.context)  # lists and dashboard show the status
        return RetryFailedMessagesSuccess(
            campaign=CampaignType.from_row(retried.campaign), retried=retried.messages
        )
