"""GraphQL types of the messages domain: messages and the interactions they received."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from schema.common.enums import InteractionKind, MessageStatus
from schema.context import Info

if TYPE_CHECKING:
    from schema.campaigns.types import CampaignType
    from schema.contacts.types import ContactType


def _getter(row: Any) -> Any:
    return row._mapping.__getitem__ if hasattr(row, "_mapping") else row.__getattribute__


@strawberry.type(name="Interaction")
class InteractionType:
    id: strawberry.ID
    kind: InteractionKind
    payload: JSON
    created_at: datetime
    message_id: strawberry.Private[int]

    @classmethod
    def from_row(cls, row: Any) -> InteractionType:
        get = _getter(row)
        return cls(
            id=strawberry.ID(str(get("id"))),
            kind=get("kind"),
            payload=get("payload"),
            created_at=get("created_at"),
            message_id=get("message_id"),
        )


@strawberry.type(name="Message")
class MessageType:
    """One campaign's message to one contact.

    `contact` and `interactions` are fetched for the whole page by the loader that built
    it (when the query selects them), so resolving them per message awaits nothing.
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
    prefetched_contact: strawberry.Private[ContactType | None] = None
    prefetched_interactions: strawberry.Private[list[InteractionType] | None] = None

    @classmethod
    def from_row(cls, row: Any, contact: ContactType | None = None) -> MessageType:
        get = _getter(row)
        return cls(
            id=strawberry.ID(str(get("id"))),
            status=get("status"),
            provider_message_id=get("provider_message_id"),
            error=get("error"),
            sent_at=get("sent_at"),
            delivered_at=get("delivered_at"),
            read_at=get("read_at"),
            failed_at=get("failed_at"),
            created_at=get("created_at"),
            campaign_id=get("campaign_id"),
            contact_id=get("contact_id"),
            prefetched_contact=contact,
        )

    @strawberry.field
    def contact(self) -> Annotated[ContactType, strawberry.lazy("schema.contacts.types")]:
        if self.prefetched_contact is None:
            raise RuntimeError("contact was not prefetched with this page of messages")
        return self.prefetched_contact

    @strawberry.field
    def interactions(self) -> list[InteractionType]:
        if self.prefetched_interactions is None:
            raise RuntimeError("interactions were not prefetched with this page of messages")
        return self.prefetched_interactions

    @strawberry.field
    async def campaign(
        self, info: Info
    ) -> Annotated[CampaignType, strawberry.lazy("schema.campaigns.types")]:
        campaign = await info.context.loaders.campaign_by_id.load(self.campaign_id)
        assert campaign is not None  # the foreign key guarantees it
        return campaign
