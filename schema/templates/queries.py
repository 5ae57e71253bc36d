"""Template queries."""

from __future__ import annotations

import strawberry

from app.templates.repository import TemplateRepository
from schema.common.enums import TemplateStatus
from schema.common.pagination import Connection, page_args
from schema.context import Info
from schema.permissions import viewer
from schema.templates.types import TemplateType


@strawberry.type
class TemplateQuery:
    # Not cached: a keyset page of a few hundred rows at most costs less than a hit.
    @strawberry.field(
        description="The WhatsApp Business Account's templates as last synced, newest first.",
        extensions=viewer(),
    )
    async def templates(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        status: TemplateStatus | None = None,
    ) -> Connection[TemplateType]:
        page = page_args(info.context.settings, first, after)
        repository = TemplateRepository(info.context.session)
        rows = await repository.page(status, page)
        nodes = [TemplateType.from_row(row) for row in rows.named()]
        return Connection.of(nodes, page, lambda: repository.count(status))
