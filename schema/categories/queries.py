"""Category queries."""

from __future__ import annotations

import strawberry

from app.categories.repository import CategoryRepository
from app.stats.repository import StatsRepository
from schema.cache import Cached
from schema.categories.types import CategoryType
from schema.common.ids import key_of
from schema.common.pagination import Connection, page_args
from schema.context import Info
from schema.permissions import viewer


@strawberry.type
class CategoryQuery:
    @strawberry.field(
        description="Categories (contact segments), newest first.",
        extensions=[Cached("categories"), *viewer()],
    )
    async def categories(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[CategoryType]:
        page = page_args(info.context.settings, first, after)
        repository = CategoryRepository(info.context.session)
        rows = await repository.page(page)
        count = StatsRepository(info.context.session).category_count  # from the counters
        return Connection.of([CategoryType.from_row(r) for r in rows], page, count)

    @strawberry.field(extensions=[Cached("categories"), *viewer()])
    async def category(self, info: Info, id: strawberry.ID) -> CategoryType | None:
        key = key_of(id, "Category", "id")
        return None if key is None else await info.context.loaders.category_by_id.load(key)
