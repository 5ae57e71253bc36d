"""setCampaignSenderNumber: send a campaign through one number, or the pool."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.senders.service import SenderService
from schema.campaigns.types import CampaignType
from schema.common.errors import InvalidStateError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import editor


@strawberry.type
class SetCampaignSenderNumberSuccess:
    campaign: CampaignType


SetCampaignSenderNumberResult = Annotated[
    SetCampaignSenderNumberSuccess | NotFoundError | InvalidStateError,
    strawberry.union("SetCampaignSenderNumberResult"),
]


@strawberry.type
class SetCampaignSenderNumberMutation:
    @strawberry.mutation(
        description="Send the campaign through one sender number (null: the pool, the "
        "default). Until it completes or is cancelled; a campaign paused because its number "
        "took no traffic sends through the new one once resumed.",
        extensions=editor(),
    )
    @savepoint
    async def set_campaign_sender_number(
        self, info: Info, id: strawberry.ID, sender_number: strawberry.ID | None = None
    ) -> SetCampaignSenderNumberResult:
        campaign_id = parse_id(id, "Campaign", "id")
        number_id = (
            None
            if sender_number is None
            else parse_id(sender_number, "SenderNumber", "senderNumber")
        )
        service = SenderService(info.context.session, info.context.settings)
        row = await service.bind(campaign_id, number_id)
        return SetCampaignSenderNumberSuccess(campaign=CampaignType.from_row(row))
