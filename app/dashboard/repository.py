"""All SQL behind the dashboard: every headline figure in one statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Campaign, Category, Contact, Interaction, Message

contacts = Contact.__table__
categories = Category.__table__
campaigns = Campaign.__table__
messages = Message.__table__
interactions = Interaction.__table__


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
        """The audit's consolidated /dashboard/stats (recommendation 7) as one round trip."""
        stmt = select(
            select(func.count()).select_from(contacts).scalar_subquery().label("contacts"),
            select(func.count())
            .select_from(contacts)
            .where(contacts.c.opted_out_at.is_not(None))
            .scalar_subquery()
            .label("opted_out"),
            select(func.count()).select_from(categories).scalar_subquery().label("categories"),
            _counts_by_status(campaigns).label("campaigns"),
            _counts_by_status(messages).label("messages"),
            select(func.count()).select_from(interactions).scalar_subquery().label("interactions"),
        )
        return dict((await self.session.execute(stmt)).one()._mapping)
