"""resumeCampaign: paused → sending (or back to scheduled); workers pick up the pending
messages again, and the reason Herald paused it, if it did, is cleared."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry

from app.campaigns.halts import clear_halt
from app.campaigns.service import CampaignDispatchService
from schema.campaigns.types import CampaignType
from schema.common.enums import CampaignStatus
from schema.common.errors import (
    InvalidStateError,
    NotFoundError,
    TemplateNotApprovedError,
    TemplateNotFoundError,
    TemplateParametersError,
)
from schema.common.ids import parse_id
from schema.common.mutations import after_commit, savepoint
from schema.context import Info
from schema.permissions import admin


@strawberry.type
class ResumeCampaignSuccess:
    campaign: CampaignType


ResumeCampaignResult = Annotated[
    ResumeCampaignSuccess
    | NotFoundError
    | InvalidStateError
    | TemplateNotFoundError
    | TemplateNotApprovedError
    | TemplateParametersError,
    strawberry.union("ResumeCampaignResult"),
]


@strawberry.type
class ResumeCampaignMutation:
    @strawberry.mutation(
        description="Continue a paused campaign where it stopped (one Herald paused before "
        "its scheduled time goes back to SCHEDULED); clears its pauseReason. Refused while "
        "its template is not APPROVED.",
        extensions=admin(),
    )
    @savepoint
    async def resume_campaign(self, info: Info, id: strawberry.ID) -> ResumeCampaignResult:
        campaign_id = parse_id(id, "Campaign", "id")
        row = await CampaignDispatchService(info.context.session).resume(campaign_id)
        # The halt mark of a pause over an error must go before the chains start.
        after_commit(info, clear_halt, info.context.redis, campaign_id)
        if row.status == CampaignStatus.SCHEDULED:
            delay_ms = max(0, int((row.scheduled_at - datetime.now(UTC)).total_seconds() * 1000))
            after_commit(info, info.context.jobs.start_scheduled, campaign_id, delay_ms=delay_ms)
        else:
            # Idempotent: also covers a pause that came before the messages were created.
            after_commit(info, info.context.jobs.materialize, campaign_id)
        return ResumeCampaignSuccess(campaign=CampaignType.from_row(row))
