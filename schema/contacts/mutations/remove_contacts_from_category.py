"""removeContactsFromCategory: contacts leave a category; the contacts themselves stay."""

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
class RemoveContactsFromCategorySuccess:
    category: CategoryType
    removed: int = strawberry.field(description="Memberships removed (non-members are ignored).")


RemoveContactsFromCategoryResult = Annotated[
    RemoveContactsFromCategorySuccess | NotFoundError | InvalidInputError,
    strawberry.union("RemoveContactsFromCategoryResult"),
]


@strawberry.type
class RemoveContactsFromCategoryMutation:
    @strawberry.mutation(
        description="Any unknown contact or category: nothing is removed.", extensions=editor()
    )
    @savepoint
    async def remove_contacts_from_category(
        self, info: Info, category_id: strawberry.ID, contact_ids: list[strawberry.ID]
    ) -> RemoveContactsFromCategoryResult:
        category = parse_id(category_id, "Category", "categoryId")
        contacts = [parse_id(i, "Contact", "contactIds") for i in contact_ids]
        service = ContactService(info.context.session, info.context.settings.import_max_rows)
        change = await service.remove_from_category(category, contacts)
        return RemoveContactsFromCategorySuccess(
            category=CategoryType.from_row(change.category), removed=change.changed
        )
