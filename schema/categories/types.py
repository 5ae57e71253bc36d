"""GraphQL types of the categories domain."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from schema.cache import Cached
from schema.common.ids import encoder
from schema.common.node import Node, database_id_field
from schema.common.pagination import Connection, page_args
from schema.context import Info

if TYPE_CHECKING:
    from schema.contacts.types import ContactType


@strawberry.type(name="Category")
class CategoryType(Node):
    node_id = encoder("Category")

    database_id: int = database_id_field()
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> CategoryType:
        return cls(
            id=CategoryType.node_id(row.id),
            database_id=row.id,
            name=row.name,
            description=row.description,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    @strawberry.field(
        description="Members of this category (one grouped query per page).",
        extensions=[Cached("contacts")],  # the audit's cache:contacts:count:category:<id>
    )
    async def contact_count(self, info: Info) -> int:
        return await info.context.loaders.contact_count_by_category_id.load(self.database_id)

    @strawberry.field
    async def contacts(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[Annotated[ContactType, strawberry.lazy("schema.contacts.types")]]:
        page = page_args(info.context.settings, first, after)
        owner = self.database_id
        nodes = await info.context.loaders.contact_page_by_category_id.load((owner, page))
        return Connection.of(
            nodes, page, lambda: info.context.loaders.contact_count_by_category_id.load(owner)
        )
