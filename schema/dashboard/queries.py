"""Dashboard query."""

from __future__ import annotations

import strawberry

from app.dashboard.repository import DashboardRepository
from schema.context import Info
from schema.dashboard.types import Dashboard


@strawberry.type
class DashboardQuery:
    @strawberry.field(description="Headline figures for a home screen, in one round trip.")
    async def dashboard(self, info: Info) -> Dashboard:
        return Dashboard.of(await DashboardRepository(info.context.session).totals())
