"""GraphQL types of the contacts domain."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from schema.common.enums import MessageStatus, WhatsAppStatus
from schema.common.ids import encoder
from schema.common.node import Node, database_id_field
from schema.common.pagination import Connection
from schema.common.selection import Projected
from schema.context import Info
from schema.messages.pages import messages_of

if TYPE_CHECKING:
    from loaders.registry import Loaders
    from schema.categories.types import CategoryType
    from schema.messages.types import InteractionType, MessageType


@strawberry.type(name="Contact")
class ContactType(Node, Projected):
    node_id = encoder("Contact")

    database_id: int = database_id_field()
    phone: str = strawberry.field(description="E.164, e.g. +33612345678.")
    name: str | None
    attributes: JSON = strawberry.field(description="Template variables, e.g. first_name.")
    whatsapp_status: WhatsAppStatus
    whatsapp_checked_at: datetime | None
    opted_out_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> ContactType:
        """Build from an ORM object or a Core row."""
        return cls(
            id=ContactType.node_id(row.id),
            database_id=row.id,
            phone=row.phone,
            name=row.name,
            attributes=row.attributes,
            whatsapp_status=row.whatsapp_status,
            whatsapp_checked_at=row.whatsapp_checked_at,
            opted_out_at=row.opted_out_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @classmethod
    async def refetch(cls, loaders: Loaders, item: Any) -> ContactType | None:
        return await loaders.contact_by_id.load(item.database_id)

    def __repr__(self) -> str:
        # Message pages build contacts with only the selected columns (loaders/messages.py).
        return f"Contact({vars(self)})"

    @strawberry.field
    async def categories(
        self, info: Info
    ) -> list[Annotated[CategoryType, strawberry.lazy("schema.categories.types")]]:
        return await info.context.loaders.categories_by_contact_id.load(self.database_id)

    @strawberry.field
    async def messages(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: MessageStatus | None = None,
    ) -> Connection[Annotated[MessageType, strawberry.lazy("schema.messages.types")]]:
        loaders = info.context.loaders
        return await messages_of(
            info,
            self.database_id,
            loaders.message_page_by_contact_id,
            loaders.message_count_by_contact_id,
            first,
            after,
            status,
        )

    @strawberry.field
    async def interactions(
        self, info: Info
    ) -> list[Annotated[InteractionType, strawberry.lazy("schema.messages.types")]]:
        return await info.context.loaders.interactions_by_contact_id.load(self.database_id)
