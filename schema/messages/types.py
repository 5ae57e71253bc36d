"""GraphQL types of the messages domain: messages and the interactions they received."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from schema.common.enums import InteractionKind, MessageStatus
from schema.common.selection import Projected
from schema.contacts.types import ContactType
from schema.context import Info

if TYPE_CHECKING:
    from schema.campaigns.types import CampaignType


@strawberry.type(name="Interaction")
class InteractionType:
    id: strawberry.ID
    kind: InteractionKind
    payload: JSON
    created_at: datetime
    message_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Any) -> InteractionType:
        return cls(
            id=strawberry.ID(str(row.id)),
            kind=row.kind,
            payload=row.payload,
            created_at=row.created_at,
            message_id=row.message_id,
        )


# Columns a page may leave out when the query does not select them (id and keys never).
_PROJECTED = (
    "status",
    "provider_message_id",
    "error",
    "sent_at",
    "delivered_at",
    "read_at",
    "failed_at",
    "created_at",
)


@strawberry.type(name="Message")
class MessageType(Projected):
    """One campaign's message to one contact.

    `contact` and `interactions` are filled for the whole page by the loader that built
    it whenever the query selects them, so resolving them per message awaits nothing.
    """

    id: strawberry.ID
    status: MessageStatus
    provider_message_id: str | None
    error: str | None
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
    def from_values(
        cls, values: Mapping[str, Any], contact: ContactType | None = None
    ) -> MessageType:
        """Build from a row's values; a column the query did not select stays absent."""
        return cls.from_projection(
            values,
            _PROJECTED,
            id=strawberry.ID(str(values["id"])),
            campaign_id=values["campaign_id"],
            contact_id=values["contact_id"],
            contact=contact,
            interactions=None,
        )

    @strawberry.field
    async def campaign(
        self, info: Info
    ) -> Annotated[CampaignType, strawberry.lazy("schema.campaigns.types")]:
        campaign = await info.context.loaders.campaign_by_id.load(self.campaign_id)
        assert campaign is not None  # the foreign key guarantees it
        return campaign
