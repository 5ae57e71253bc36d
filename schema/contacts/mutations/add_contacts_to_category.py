"""addContactsToCategory: contacts join a category; those already in it stay."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.contacts.service import ContactService
from schema.categories.types import CategoryType
from schema.common.errors import InvalidInputError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import editor


@strawberry.type
class AddContactsToCategorySuccess:
    category: CategoryType
    added: int = strawberry.field(description="New memberships (existing ones are not counted).")


AddContactsToCategoryResult = Annotated[
    AddContactsToCategorySuccess | NotFoundError | InvalidInputError,
    strawberry.union("AddContactsToCategoryResult"),
]


@strawberry.type
class AddContactsToCategoryMutation:
    @strawberry.mutation(
        description="Any unknown contact or category: nothing is added.", extensions=editor()
    )
    @savepoint
    async def add_contacts_to_category(
        self, info: Info, category_id: strawberry.ID, contact_ids: list[strawberry.ID]
    ) -> AddContactsToCategoryResult:
        category = parse_id(category_id, "Category", "categoryId")
        contacts = [parse_id(i, "Contact", "contactIds") for i in contact_ids]
        service = ContactService(info.context.session, info.context.settings.import_max_rows)
        change = await service.add_to_category(category, contacts)
        return AddContactsToCategorySuccess(
            category=CategoryType.from_row(change.category), added=change.changed
        )
