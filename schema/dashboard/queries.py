"""Dashboard query."""

from __future__ import annotations

import strawberry

from app.stats.repository import StatsRepository
from schema.cache import Cached
from schema.context import Info
from schema.dashboard.types import Dashboard
from schema.permissions import viewer


@strawberry.type
class DashboardQuery:
    @strawberry.field(
        description="Headline figures for a home screen, in one round trip.",
        # Counts categories too, so a category change must also invalidate it.
        extensions=[Cached("stats", depends_on=("categories",)), *viewer()],
    )
    async def dashboard(self, info: Info) -> Dashboard:
        return Dashboard.of(await StatsRepository(info.context.session).dashboard())
