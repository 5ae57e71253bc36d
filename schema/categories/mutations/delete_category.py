"""deleteCategory: remove a segment; its contacts stay, campaigns stop targeting it."""

from __future__ import annotations

from typing import Annotated

import strawberry

from app.categories.service import CategoryService
from schema.common.errors import CategoryInUseError, NotFoundError
from schema.common.mutations import savepoint
from schema.common.pagination import parse_id
from schema.context import Info
from schema.permissions import editor


@strawberry.type
class DeleteCategorySuccess:
    deleted_id: strawberry.ID


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
        category_id = parse_id(id, "id")
        service = CategoryService(info.context.session)
        await service.delete(category_id)
        return DeleteCategorySuccess(deleted_id=id)
