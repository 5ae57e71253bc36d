"""deleteCampaign: drafts only; a scheduled or sent campaign is cancelled, not deleted."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.campaigns.service import CampaignService
from schema.campaigns.types import CampaignType
from schema.common.errors import InvalidStateError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import editor


@strawberry.type
class DeleteCampaignSuccess:
    deleted_id: strawberry.ID = strawberry.field(description="The global id it had.")


DeleteCampaignResult = Annotated[
    DeleteCampaignSuccess | NotFoundError | InvalidStateError,
    strawberry.union("DeleteCampaignResult"),
]


@strawberry.type
class DeleteCampaignMutation:
    @strawberry.mutation(
        description="Delete a draft campaign; any other status: InvalidStateError.",
        extensions=editor(),
    )
    @savepoint
    async def delete_campaign(self, info: Info, id: strawberry.ID) -> DeleteCampaignResult:
        campaign_id = parse_id(id, "Campaign", "id")
        service = CampaignService(info.context.session)
        await service.delete(campaign_id)
        return DeleteCampaignSuccess(deleted_id=CampaignType.node_id(campaign_id))
