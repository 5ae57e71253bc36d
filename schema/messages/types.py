"""GraphQL types of the messages domain: messages and the interactions they received."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from schema.common.enums import InteractionKind, MessageStatus
from schema.common.ids import encoder
from schema.common.node import Node, database_id_field
from schema.common.selection import Projected
from schema.contacts.types import ContactType
from schema.context import Info

if TYPE_CHECKING:
    from loaders.registry import Loaders
    from schema.campaigns.types import CampaignType


@strawberry.type(name="Interaction")
class InteractionType(Node):
    node_id = encoder("Interaction")

    database_id: int = database_id_field()
    kind: InteractionKind
    payload: JSON
    created_at: datetime
    message_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Any) -> InteractionType:
        return cls(
            id=InteractionType.node_id(row.id),
            database_id=row.id,
            kind=row.kind,
            payload=row.payload,
            created_at=row.created_at,
            message_id=row.message_id,
        )


@strawberry.type(name="Message")
class MessageType(Node, Projected):
    """One campaign's message to one contact.

    `contact` and `interactions` are filled for the whole page by the loader that built
    it whenever the query selects them, so resolving them per message awaits nothing.
    """

    node_id = encoder("Message")

    database_id: int = database_id_field()
    status: MessageStatus
    provider_message_id: str | None
    error: str | None
    error_code: int | None = strawberry.field(
        description="The WhatsApp Cloud API error code of a failed message, when it gave one."
    )
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None
    created_at: datetime
    campaign_id: strawberry.Private[int]
    contact_id: strawberry.Private[int]
    # Plain attributes, not resolvers: 1,000 messages must not cost 2,000 resolver calls.
    contact: ContactType | None = strawberry.field(default=None, graphql_type=ContactType)
    interactions: list[InteractionType] | None = strawberry.field(
        default=None, graphql_type=list[InteractionType]
    )

    @classmethod
    async def refetch(cls, loaders: Loaders, item: Any) -> MessageType | None:
        return await loaders.message_by_id.load(item.database_id)

    def __repr__(self) -> str:
        # Pages build messages with only the selected columns (loaders/messages.py).
        return f"Message({vars(self)})"

    @strawberry.field
    async def campaign(
        self, info: Info
    ) -> Annotated[CampaignType, strawberry.lazy("schema.campaigns.types")]:
        campaign = await info.context.loaders.campaign_by_id.load(self.campaign_id)
        assert campaign is not None  # the foreign key guarantees it
        return campaign
