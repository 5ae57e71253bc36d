"""scheduleCampaign: draft or scheduled → scheduled at a future time; a worker starts it then."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry

from app.campaigns.service import CampaignDispatchService
from schema.campaigns.types import CampaignType
from schema.common.errors import (
    InvalidInputError,
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
class ScheduleCampaignSuccess:
    campaign: CampaignType


ScheduleCampaignResult = Annotated[
    ScheduleCampaignSuccess
    | NotFoundError
    | InvalidStateError
    | InvalidInputError
    | TemplateNotFoundError
    | TemplateNotApprovedError
    | TemplateParametersError,
    strawberry.union("ScheduleCampaignResult"),
]


@strawberry.type
class ScheduleCampaignMutation:
    @strawberry.mutation(
        description="Start sending at `at` (with a UTC offset, in the future). "
        "Scheduling again replaces the earlier time. Refused, like startCampaign, for a "
        "template not APPROVED or not filled.",
        extensions=admin(),
    )
    @savepoint
    async def schedule_campaign(
        self, info: Info, id: strawberry.ID, at: datetime
    ) -> ScheduleCampaignResult:
        campaign_id = parse_id(id, "Campaign", "id")
        row = await CampaignDispatchService(info.context.session).schedule(campaign_id, at)
        delay_ms = max(0, int((at - datetime.now(UTC)).total_seconds() * 1000))
        # Fires at `at`; if the campaign was rescheduled meanwhile it is not due and skips.
        start = info.context.jobs.start_scheduled
        after_commit(info, start, campaign_id, delay_ms=delay_ms)
        return ScheduleCampaignSuccess(campaign=CampaignType.from_row(row))
