"""startCampaign: draft or scheduled → sending; materializing and sending run on workers."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.campaigns.service import CampaignDispatchService
from schema.campaigns.types import CampaignType
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
class StartCampaignSuccess:
    campaign: CampaignType


StartCampaignResult = Annotated[
    StartCampaignSuccess
    | NotFoundError
    | InvalidStateError
    | TemplateNotFoundError
    | TemplateNotApprovedError
    | TemplateParametersError,
    strawberry.union("StartCampaignResult"),
]


@strawberry.type
class StartCampaignMutation:
    @strawberry.mutation(
        description="Start sending now. Returns at once: the messages are created and sent "
        "by workers. Of two concurrent starts, one gets InvalidStateError. Refused for a "
        "template that is not APPROVED or whose parameters the campaign does not fill.",
        extensions=admin(),
    )
    @savepoint
    async def start_campaign(self, info: Info, id: strawberry.ID) -> StartCampaignResult:
        campaign_id = parse_id(id, "Campaign", "id")
        row = await CampaignDispatchService(info.context.session).start(campaign_id)
        after_commit(info, info.context.jobs.materialize, campaign_id)
        return StartCampaignSuccess(campaign=CampaignType.from_row(row))
