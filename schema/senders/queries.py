"""Sender number and messaging limit queries."""

from __future__ import annotations

import strawberry

from app.senders.outlook import Outlooks
from app.senders.repository import SenderRepository
from schema.context import Info
from schema.permissions import viewer
from schema.senders.types import MessagingLimit, SenderNumberType


@strawberry.type
class SenderQuery:
    @strawberry.field(
        description="The business numbers campaigns send through (the default one joins at "
        "the first dispatch).",
        extensions=viewer(),
    )
    async def sender_numbers(self, info: Info) -> list[SenderNumberType]:
        numbers = await SenderRepository(info.context.session).all()
        return [SenderNumberType.of(number) for number in numbers]

    @strawberry.field(
        description="The messaging limit in force and what its window has left.",
        extensions=viewer(),
    )
    async def messaging_limit(self, info: Info) -> MessagingLimit:
        context = info.context
        outlooks = Outlooks(context.session, context.redis, context.settings)
        return MessagingLimit.of(await outlooks.window())
