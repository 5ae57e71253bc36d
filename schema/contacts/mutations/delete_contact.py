"""deleteContact: remove a contact with its memberships, messages and interactions."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.contacts.service import ContactService
from schema.common.errors import NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.contacts.types import ContactType
from schema.context import Info
from schema.permissions import editor


@strawberry.type
class DeleteContactSuccess:
    deleted_id: strawberry.ID = strawberry.field(description="The global id it had.")


DeleteContactResult = Annotated[
    DeleteContactSuccess | NotFoundError, strawberry.union("DeleteContactResult")
]


@strawberry.type
class DeleteContactMutation:
    @strawberry.mutation(
        description="Delete a contact and everything recorded about it.", extensions=editor()
    )
    @savepoint
    async def delete_contact(self, info: Info, id: strawberry.ID) -> DeleteContactResult:
        contact_id = parse_id(id, "Contact", "id")
        service = ContactService(info.context.session, info.context.settings.import_max_rows)
        await service.delete(contact_id)
        return DeleteContactSuccess(deleted_id=ContactType.node_id(contact_id))
