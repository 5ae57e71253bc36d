"""Contact queries."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.contacts.repository import ContactFilter, ContactRepository
from schema.cache import Cached
from schema.common.enums import WhatsAppStatus
from schema.common.pagination import Connection, page_args, parse_id
from schema.contacts.types import ContactType
from schema.context import Info
from schema.permissions import viewer


@strawberry.type
class ContactQuery:
    @strawberry.field(
        description="Contacts, newest first.",
        extensions=[
            Cached(
                "contacts",
                ttl=lambda s: s.cache_ttl_contacts_list,
                # Only pages that scan: a search, or a filter no index serves. A plain or
                # a category's page is an index range, cheaper than a cache hit.
                when=lambda _, arguments: bool(
                    arguments.get("search")
                    or arguments.get("whatsapp_status") is not None
                    or arguments.get("opted_out") is not None
                ),
            ),
            *viewer(),
        ],
    )
    async def contacts(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        search: Annotated[
            str | None, strawberry.argument(description="Case-insensitive match on name or phone.")
        ] = None,
        category_id: strawberry.ID | None = None,
        whatsapp_status: WhatsAppStatus | None = None,
        opted_out: bool | None = None,
    ) -> Connection[ContactType]:
        page = page_args(info.context.settings, first, after)
        where = ContactFilter(
            search=search,
            category_id=None if category_id is None else parse_id(category_id, "categoryId"),
            whatsapp_status=whatsapp_status,
            opted_out=opted_out,
        )
        repository = ContactRepository(info.context.session)
        rows = await repository.page(where, page)
        return Connection.of(
            [ContactType.from_row(r) for r in rows], page, lambda: repository.count(where)
        )

    @strawberry.field(extensions=viewer())
    async def contact(self, info: Info, id: strawberry.ID) -> ContactType | None:
        return await info.context.loaders.contact_by_id.load(parse_id(id, "id"))
