"""updateCategory: rename or redescribe a category (only the fields given)."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from app.categories.service import CategoryService
from schema.categories.types import CategoryType
from schema.common.errors import DuplicateError, InvalidInputError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import editor


@strawberry.input(description="Omitted fields stay as they are; `description: null` clears it.")
class UpdateCategoryInput:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET

    def changes(self) -> dict[str, Any]:
        given = {"name": self.name, "description": self.description}
        return {k: v for k, v in given.items() if v is not strawberry.UNSET}


@strawberry.type
class UpdateCategorySuccess:
    category: CategoryType


UpdateCategoryResult = Annotated[
    UpdateCategorySuccess | NotFoundError | DuplicateError | InvalidInputError,
    strawberry.union("UpdateCategoryResult"),
]


@strawberry.type
class UpdateCategoryMutation:
    @strawberry.mutation(
        description="Edit a category; another one's name is a DuplicateError.", extensions=editor()
    )
    @savepoint
    async def update_category(
        self, info: Info, id: strawberry.ID, input: UpdateCategoryInput
    ) -> UpdateCategoryResult:
        category_id = parse_id(id, "Category", "id")
        service = CategoryService(info.context.session)
        row = await service.update(category_id, input.changes())
        return UpdateCategorySuccess(category=CategoryType.from_row(row))
