"""createCampaign: a draft with its template and target categories."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.campaigns.service import CampaignService, TemplateValues
from app.senders.service import SenderService
from schema.campaigns.types import CampaignType
from schema.common.errors import InvalidInputError, NotFoundError, TemplateNotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import editor
from schema.templates.types import TemplateParameterInput


@strawberry.input(
    description="A synced template (`templates`), by name and language; its body comes from "
    "the sync."
)
class TemplateInput:
    name: str = strawberry.field(description="The WhatsApp template's name.")
    language: str = strawberry.field(description='Template language code, e.g. "en_US".')
    parameters: list[TemplateParameterInput] | None = strawberry.field(
        default=None,
        description="One source per placeholder of the body, in the order of "
        "`Template.placeholders`. Omitted: each placeholder takes the contact attribute it "
        "names ({{first_name}}), which numbered ones ({{1}}) cannot.",
    )

    def values(self) -> TemplateValues:
        given = self.parameters or []
        return TemplateValues(self.name, self.language, [(p.source, p.value) for p in given])


@strawberry.input
class CreateCampaignInput:
    name: str
    template: TemplateInput
    target_category_ids: list[strawberry.ID] = strawberry.field(default_factory=list)
    sender_number: strawberry.ID | None = strawberry.field(
        default=None, description="The one number it sends through; null: the pool."
    )


@strawberry.type
class CreateCampaignSuccess:
    campaign: CampaignType


CreateCampaignResult = Annotated[
    CreateCampaignSuccess | InvalidInputError | NotFoundError | TemplateNotFoundError,
    strawberry.union("CreateCampaignResult"),
]


@strawberry.type
class CreateCampaignMutation:
    @strawberry.mutation(
        description="Create a draft campaign of a synced template; an unknown target or "
        "template writes nothing.",
        extensions=editor(),
    )
    @savepoint
    async def create_campaign(self, info: Info, input: CreateCampaignInput) -> CreateCampaignResult:
        targets = [parse_id(i, "Category", "targetCategoryIds") for i in input.target_category_ids]
        service = CampaignService(info.context.session)
        row = await service.create(input.name, input.template.values(), targets)
        if input.sender_number is not None:
            number_id = parse_id(input.sender_number, "SenderNumber", "senderNumber")
            senders = SenderService(info.context.session, info.context.settings)
            row = await senders.bind(row.id, number_id)
        return CreateCampaignSuccess(campaign=CampaignType.from_row(row))
