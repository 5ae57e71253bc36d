"""All SQL about campaign dispatch state: conditional status transitions and completion."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Campaign, CampaignStatus, MessageStatus, campaign_categories
from app.models import Message as MessageModel

campaigns = cast(Table, Campaign.__table__)
messages = cast(Table, MessageModel.__table__)


class CampaignDispatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, campaign_id: int) -> Row | None:
        stmt = select(campaigns).where(campaigns.c.id == campaign_id)
        return (await self.session.execute(stmt)).first()

    async def transition(
        self,
        campaign_id: int,
        allowed: Sequence[CampaignStatus],
        to: CampaignStatus,
        **values: Any,
    ) -> Row | None:
        """Move to `to` only from an `allowed` state, atomically; None if it was not allowed.

        The WHERE clause is the arbiter: of two concurrent starts exactly one matches.
        """
        stmt = (
            update(campaigns)
            .where(campaigns.c.id == campaign_id, campaigns.c.status.in_(allowed))
            .values(status=to, updated_at=func.now(), **values)
            .returning(campaigns)
        )
        return (await self.session.execute(stmt)).first()

    async def start_if_due(self, campaign_id: int, now: datetime) -> bool:
        """scheduled → sending once its time has come (a rescheduled campaign is not due)."""
        stmt = (
            update(campaigns)
            .where(
                campaigns.c.id == campaign_id,
                campaigns.c.status == CampaignStatus.SCHEDULED,
                campaigns.c.scheduled_at <= now,
            )
            .values(status=CampaignStatus.SENDING, started_at=func.now(), updated_at=func.now())
        )
        return (await self.session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]

    async def complete_if_done(self, campaign_id: int) -> bool:
        """sending → completed when no message is pending or sending any more."""
        open_messages = exists().where(
            messages.c.campaign_id == campaign_id,
            messages.c.status.in_([MessageStatus.PENDING, MessageStatus.SENDING]),
        )
        stmt = (
            update(campaigns)
            .where(
                campaigns.c.id == campaign_id,
                campaigns.c.status == CampaignStatus.SENDING,
                ~open_messages,
            )
            .values(status=CampaignStatus.COMPLETED, completed_at=func.now(), updated_at=func.now())
        )
        return (await self.session.execute(stmt)).rowcount == 1  # type: ignore[attr-defined]

    async def has_targets(self, campaign_id: int) -> bool:
        stmt = select(exists().where(campaign_categories.c.campaign_id == campaign_id))
        return bool((await self.session.execute(stmt)).scalar_one())

    async def sending_started_before(self, seconds_ago: float) -> list[int]:
        """Sending campaigns started over `seconds_ago` (a younger one's own materialize
        message may still be on its way)."""
        stmt = select(campaigns.c.id).where(
            campaigns.c.status == CampaignStatus.SENDING,
            or_(
                campaigns.c.started_at.is_(None),
                campaigns.c.started_at
                < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds_ago),
            ),
        )
        return list((await self.session.execute(stmt)).scalars())

    async def ids_with_status(self, status: CampaignStatus) -> list[int]:
        stmt = select(campaigns.c.id).where(campaigns.c.status == status)
        return list((await self.session.execute(stmt)).scalars())
