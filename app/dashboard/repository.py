"""All SQL behind the dashboard: every headline figure in one statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, literal_column, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Campaign, Category
from app.stats.repository import CAMPAIGN_FIELDS, contact_counts, global_counts

categories = Category.__table__
campaigns = Campaign.__table__


def _counts_by_status(table: Any) -> Any:
    """A scalar subquery: {"status": count, ...} as one jsonb object."""
    grouped = select(table.c.status, func.count().label("n")).group_by(table.c.status).subquery()
    return select(
        func.coalesce(
            func.jsonb_object_agg(grouped.c.status, grouped.c.n), literal_column("'{}'::jsonb")
        )
    ).scalar_subquery()


class DashboardRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def totals(self) -> dict[str, Any]:
        """The audit's consolidated /dashboard/stats (recommendation 7) as one round trip.

        Messages, interactions and contacts come from the counters, so the cost does not
        grow with them; categories and campaigns are counted (few rows).
        """
        messages = global_counts().subquery()
        contacts = contact_counts().subquery()
        stmt = select(
            contacts.c.contacts,
            contacts.c.opted_out,
            select(func.count()).select_from(categories).scalar_subquery().label("categories"),
            _counts_by_status(campaigns).label("campaigns"),
            *(messages.c[f] for f in CAMPAIGN_FIELDS),
        ).select_from(contacts.join(messages, true()))  # one row each
        row = dict((await self.session.execute(stmt)).one()._mapping)
        row["messages"] = {f: row.pop(f) for f in CAMPAIGN_FIELDS}
        return row
