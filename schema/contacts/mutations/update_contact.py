"""updateContact: change a contact's phone, name or attributes (only the fields given)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.contacts.service import ContactService
from schema.common.errors import DuplicateError, InvalidInputError, InvalidPhoneError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.contacts.types import ContactType
from schema.context import Info
from schema.permissions import editor


@strawberry.input(description="Omitted fields stay as they are; `name: null` clears the name.")
class UpdateContactInput:
    phone: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    attributes: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Replaces all template variables."
    )
    default_region: str | None = strawberry.field(
        default=None, description='ISO 3166 region for a national phone, e.g. "FR".'
    )

    def changes(self) -> dict[str, Any]:
        given = {"phone": self.phone, "name": self.name, "attributes": self.attributes}
        return {k: v for k, v in given.items() if v is not strawberry.UNSET}


@strawberry.type
class UpdateContactSuccess:
    contact: ContactType


UpdateContactResult = Annotated[
    UpdateContactSuccess | NotFoundError | InvalidPhoneError | DuplicateError | InvalidInputError,
    strawberry.union("UpdateContactResult"),
]


@strawberry.type
class UpdateContactMutation:
    @strawberry.mutation(
        description="Edit a contact; another contact's phone is a DuplicateError.",
        extensions=editor(),
    )
    @savepoint
    async def update_contact(
        self, info: Info, id: strawberry.ID, input: UpdateContactInput
    ) -> UpdateContactResult:
        contact_id = parse_id(id, "Contact", "id")
        service = ContactService(info.context.session, info.context.settings.import_max_rows)
        row = await service.update(contact_id, input.changes(), input.default_region)
        return UpdateContactSuccess(contact=ContactType.from_row(row))
