"""deleteCategory: remove a segment; its contacts stay, campaigns stop targeting it."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.categories.service import CategoryService
from schema.categories.types import CategoryType
from schema.common.errors import CategoryInUseError, NotFoundError
from schema.common.ids import parse_id
from schema.common.mutations import savepoint
from schema.context import Info
from schema.permissions import editor


@strawberry.type
class DeleteCategorySuccess:
    deleted_id: strawberry.ID = strawberry.field(description="The global id it had.")


DeleteCategoryResult = Annotated[
    DeleteCategorySuccess | NotFoundError | CategoryInUseError,
    strawberry.union("DeleteCategoryResult"),
]


@strawberry.type
class DeleteCategoryMutation:
    @strawberry.mutation(
        description="Delete a category; its contacts are kept. Refused while a scheduled, "
        "sending or paused campaign targets it.",
        extensions=editor(),
    )
    @savepoint
    async def delete_category(self, info: Info, id: strawberry.ID) -> DeleteCategoryResult:
        category_id = parse_id(id, "Category", "id")
        service = CategoryService(info.context.session)
        await service.delete(category_id)
        return DeleteCategorySuccess(deleted_id=CategoryType.node_id(category_id))
