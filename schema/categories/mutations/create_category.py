"""createCategory: a new contact segment; names are unique."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.categories.service import CategoryService
from schema.categories.types import CategoryType
from schema.common.errors import DuplicateError, InvalidInputError
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import editor


@strawberry.input
class CreateCategoryInput:
    name: str = strawberry.field(description="Unique, at most 200 characters.")
    description: str | None = strawberry.field(
        default=None, description="At most 1,000 characters."
    )


@strawberry.type
class CreateCategorySuccess:
    category: CategoryType


CreateCategoryResult = Annotated[
    CreateCategorySuccess | DuplicateError | InvalidInputError,
    strawberry.union("CreateCategoryResult"),
]


@strawberry.type
class CreateCategoryMutation:
    @strawberry.mutation(
        description="Add a category; a name already used is a DuplicateError.", extensions=editor()
    )
    @savepoint
    async def create_category(self, info: Info, input: CreateCategoryInput) -> CreateCategoryResult:
        service = CategoryService(info.context.session)
        row = await service.create(input.name, input.description)
        return CreateCategorySuccess(category=CategoryType.from_row(row))
