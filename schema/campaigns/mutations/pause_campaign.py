"""pauseCampaign: sending → paused; workers stop after the batch in flight."""

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
class PauseCampaignSuccess:
    campaign: CampaignType


PauseCampaignResult = Annotated[
    PauseCampaignSuccess | NotFoundError | InvalidStateError,
    strawberry.union("PauseCampaignResult"),
]


@strawberry.type
class PauseCampaignMutation:
    @strawberry.mutation(
        description="Stop sending; takes effect within one batch.", extensions=admin()
    )
    @savepoint
    async def pause_campaign(self, info: Info, id: strawberry.ID) -> PauseCampaignResult:
        campaign_id = parse_id(id, "Campaign", "id")
        row = await CampaignDispatchService(info.context.session).pause(campaign_id)
        return PauseCampaignSuccess(campaign=CampaignType.from_row(row))
