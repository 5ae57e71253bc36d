"""updateCampaign: rename a draft or replace its template; other states are read-only."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.campaigns.service import CampaignService
from schema.campaigns.mutations.create_campaign import TemplateInput
from schema.campaigns.types import CampaignType
from schema.common.errors import (
    InvalidInputError,
    InvalidStateError,
    NotFoundError,
    TemplateNotFoundError,
)
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import editor


@strawberry.input(description="Omitted fields stay as they are; a template is replaced whole.")
class UpdateCampaignInput:
    name: str | None = None
    template: TemplateInput | None = None


@strawberry.type
class UpdateCampaignSuccess:
    campaign: CampaignType


UpdateCampaignResult = Annotated[
    UpdateCampaignSuccess
    | NotFoundError
    | InvalidStateError
    | InvalidInputError
    | TemplateNotFoundError,
    strawberry.union("UpdateCampaignResult"),
]


@strawberry.type
class UpdateCampaignMutation:
    @strawberry.mutation(
        description="Edit a draft campaign; any other status: InvalidStateError.",
        extensions=editor(),
    )
    @savepoint
    async def update_campaign(
        self, info: Info, id: strawberry.ID, input: UpdateCampaignInput
    ) -> UpdateCampaignResult:
        campaign_id = parse_id(id, "Campaign", "id")
        template = None if input.template is None else input.template.values()
        service = CampaignService(info.context.session)
        row = await service.update(campaign_id, input.name, template)
        return UpdateCampaignSuccess(campaign=CampaignType.from_row(row))
