"""setCampaignTargets: replace the categories a draft or scheduled campaign will reach."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.campaigns.service import CampaignService
from schema.campaigns.types import CampaignType
from schema.common.errors import InvalidInputError, InvalidStateError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import editor


@strawberry.type
class SetCampaignTargetsSuccess:
    campaign: CampaignType


SetCampaignTargetsResult = Annotated[
    SetCampaignTargetsSuccess | NotFoundError | InvalidStateError | InvalidInputError,
    strawberry.union("SetCampaignTargetsResult"),
]


@strawberry.type
class SetCampaignTargetsMutation:
    @strawberry.mutation(
        description="Targets become exactly these categories (draft or scheduled campaigns); "
        "an unknown category changes nothing.",
        extensions=editor(),
    )
    @savepoint
    async def set_campaign_targets(
        self, info: Info, id: strawberry.ID, category_ids: list[strawberry.ID]
    ) -> SetCampaignTargetsResult:
        campaign_id = parse_id(id, "Campaign", "id")
        targets = [parse_id(i, "Category", "categoryIds") for i in category_ids]
        service = CampaignService(info.context.session)
        row = await service.set_targets(campaign_id, targets)
        return SetCampaignTargetsSuccess(campaign=CampaignType.from_row(row))
