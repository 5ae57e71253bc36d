"""createContact: one contact, its phone normalized to E.164, optionally put into categories."""

from __future__ import annotations

from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from app.contacts.service import ContactService
from schema.common.errors import DuplicateError, InvalidInputError, InvalidPhoneError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.contacts.types import ContactType
from schema.context import Info
from schema.permissions import editor


@strawberry.input
class CreateContactInput:
    phone: str = strawberry.field(
        description='Any notation; national ones ("06 12 34 56 78") need defaultRegion.'
    )
    name: str | None = strawberry.field(default=None, description="At most 200 characters.")
    attributes: JSON | None = strawberry.field(
        default=None,
        description="Template variables: a JSON object of at most 16 KB, 4 levels deep, "
        "100 keys and list items.",
    )
    default_region: str | None = strawberry.field(
        default=None, description='ISO 3166 region for national numbers, e.g. "FR".'
    )
    category_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


@strawberry.type
class CreateContactSuccess:
    contact: ContactType


CreateContactResult = Annotated[
    CreateContactSuccess | InvalidPhoneError | DuplicateError | InvalidInputError | NotFoundError,
    strawberry.union("CreateContactResult"),
]


@strawberry.type
class CreateContactMutation:
    @strawberry.mutation(
        description="Add a contact; a phone already known is a DuplicateError.", extensions=editor()
    )
    @savepoint
    async def create_contact(self, info: Info, input: CreateContactInput) -> CreateContactResult:
        category_ids = [parse_id(i, "Category", "categoryIds") for i in input.category_ids]
        service = ContactService(info.context.session, info.context.settings.import_max_rows)
        row = await service.create(
            input.phone, input.name, input.attributes, input.default_region, category_ids
        )
        return CreateContactSuccess(contact=ContactType.from_row(row))
