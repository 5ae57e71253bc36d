"""cancelCampaign: stop for good; messages not yet handed to a worker become failed."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.campaigns.service import CampaignDispatchService
from schema.campaigns.types import CampaignType
from schema.common.errors import InvalidStateError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import admin


@strawberry.type
class CancelCampaignSuccess:
    campaign: CampaignType


CancelCampaignResult = Annotated[
    CancelCampaignSuccess | NotFoundError | InvalidStateError,
    strawberry.union("CancelCampaignResult"),
]


@strawberry.type
class CancelCampaignMutation:
    @strawberry.mutation(
        description="Cancel a draft, scheduled, sending or paused campaign; pending "
        "messages end failed with error 'cancelled'. Takes effect within one batch.",
        extensions=admin(),
    )
    @savepoint
    async def cancel_campaign(self, info: Info, id: strawberry.ID) -> CancelCampaignResult:
        campaign_id = parse_id(id, "Campaign", "id")
        row = await CampaignDispatchService(info.context.session).cancel(campaign_id)
        return CancelCampaignSuccess(campaign=CampaignType.from_row(row))
