"""addSenderNumber: another business number of the portfolio for campaigns to send through."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.senders.service import SenderService
from schema.common.errors import InvalidInputError
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import admin
from schema.senders.types import SenderNumberType


@strawberry.input
class AddSenderNumberInput:
    phone_number_id: str = strawberry.field(description="The Cloud API's phone number id.")
    display_number: str = strawberry.field(description='As WhatsApp shows it: "15550001234".')
    throughput: int = strawberry.field(default=80, description="Messages per second, 1-1,000.")


@strawberry.type
class AddSenderNumberSuccess:
    sender_number: SenderNumberType


AddSenderNumberResult = Annotated[
    AddSenderNumberSuccess | InvalidInputError, strawberry.union("AddSenderNumberResult")
]


@strawberry.type
class AddSenderNumberMutation:
    @strawberry.mutation(
        description="Add a sender number to the pool (a known phone number id: update its "
        "display number and throughput).",
        extensions=admin(),
    )
    @savepoint
    async def add_sender_number(
        self, info: Info, input: AddSenderNumberInput
    ) -> AddSenderNumberResult:
        service = SenderService(info.context.session, info.context.settings)
        number = await service.add(input.phone_number_id, input.display_number, input.throughput)
        return AddSenderNumberSuccess(sender_number=SenderNumberType.of(number))
