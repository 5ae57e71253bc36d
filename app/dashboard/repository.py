"""All SQL behind the dashboard: every headline figure in one statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.stats.repository import (
    CAMPAIGN_FIELDS,
    CAMPAIGN_STATUSES,
    CONTACT_FIELDS,
    TOTAL_FIELDS,
    sums,
)

# Two counter tables of a few rows each, whatever the number of contacts, messages,
# campaigns or categories; built once, so a request neither builds nor compiles it.
_TOTALS = text(
    f"SELECT * FROM (SELECT {sums(TOTAL_FIELDS)} FROM total_counters) AS t,"
    f" (SELECT {sums(CONTACT_FIELDS)} FROM contact_counters) AS c"
)


class DashboardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def totals(self) -> dict[str, Any]:
        """The audit's consolidated /dashboard/stats (recommendation 7) as one round trip."""
        row = (await self.session.execute(_TOTALS)).one()._mapping
        return {
            "contacts": row["contacts"],
            "opted_out": row["opted_out"],
            "categories": row["categories"],
            "campaigns": {s: row[f"campaigns_{s}"] for s in CAMPAIGN_STATUSES},
            "messages": {f: row[f] for f in CAMPAIGN_FIELDS},
        }
