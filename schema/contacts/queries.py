"""Contact queries."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from app.contacts.repository import ContactFilter, ContactRepository
from app.contacts.service import count_contacts
from loaders.base import projected
from schema.cache import Cached
from schema.common.directives import MaxLength
from schema.common.enums import WhatsAppStatus
from schema.common.ids import key_of
from schema.common.pagination import Connection, page_args
from schema.common.selection import page_columns
from schema.contacts.types import ContactType
from schema.context import Info
from schema.permissions import viewer

# A name or a number to look for, not a document: each character costs every row a
# search reads (the trigram index serves 3 characters or more). Declared in the schema,
# refused by the shape limits before the field's cache hashes it into a key.
SEARCH_MAX = 100


def _scans(
    search: str | None = None,
    whatsapp_status: WhatsAppStatus | None = None,
    opted_out: bool | None = None,
    **_: Any,
) -> bool:
    """Whether a page scans (a search, or a filter no index serves), and so is cached: a
    plain or a category's page is an index range, cheaper than a cache hit."""
    return bool(search) or whatsapp_status is not None or opted_out is not None


@strawberry.type
class ContactQuery:
    @strawberry.field(
        description="Contacts, newest first.",
        extensions=[
            Cached(
                "contacts",
                ttl=lambda s: s.cache_ttl_contacts_list,
                when=lambda _, arguments: _scans(**arguments),
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
            str | None,
            strawberry.argument(
                description="Case-insensitive match on name or phone; at most 100 characters.",
                directives=[MaxLength(value=SEARCH_MAX)],
            ),
        ] = None,
        category_id: strawberry.ID | None = None,
        whatsapp_status: WhatsAppStatus | None = None,
        opted_out: bool | None = None,
    ) -> Connection[ContactType]:
        page = page_args(info.context.settings, first, after)
        category = None if category_id is None else key_of(category_id, "Category", "categoryId")
        if category_id is not None and category is None:  # another type's id: no category
            return Connection.empty(page)
        where = ContactFilter(
            search=search,
            category_id=category,
            whatsapp_status=whatsapp_status,
            opted_out=opted_out,
        )
        repository = ContactRepository(info.context.session)
        # A cached page is stored whole (any later selection may read it); one that is not
        # fetches only the columns its nodes select.
        scans = _scans(search, whatsapp_status, opted_out)
        rows = await repository.page(where, page, None if scans else page_columns(info))
        return Connection.of(
            projected(rows.fields, ContactType)(rows.records),
            page,
            lambda: count_contacts(info.context.session, where),
        )

    @strawberry.field(extensions=viewer())
    async def contact(self, info: Info, id: strawberry.ID) -> ContactType | None:
        key = key_of(id, "Contact", "id")
        return None if key is None else await info.context.loaders.contact_by_id.load(key)
