"""Campaign lifecycle transitions that drive dispatch; the caller enqueues work after commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.dispatch_repository import CampaignDispatchRepository
from app.errors import InvalidInput, InvalidState, NotFound
from app.messages.dispatch_repository import MessageDispatchRepository
from app.models import CampaignStatus

S = CampaignStatus


@dataclass(frozen=True)
class Retried:
    campaign: Row
    messages: int


class CampaignDispatchService:
    def __init__(self, session: AsyncSession) -> None:
        self.campaigns = CampaignDispatchRepository(session)
        self.messages = MessageDispatchRepository(session)

    async def _refuse(self, campaign_id: int, verb: str) -> Exception:
        """Why a conditional transition matched nothing: missing, or in the wrong state."""
        row = await self.campaigns.get(campaign_id)
        if row is None:
            return NotFound("Campaign", campaign_id)
        return InvalidState(
            "Campaign", campaign_id, row.status, f"cannot {verb} a {row.status} campaign"
        )

    async def _move(
        self,
        campaign_id: int,
        allowed: list[CampaignStatus],
        to: CampaignStatus,
        verb: str,
        **kw: object,
    ) -> Row:
        row = await self.campaigns.transition(campaign_id, allowed, to, **kw)
        if row is None:
            raise await self._refuse(campaign_id, verb)
        return row

    async def start(self, campaign_id: int) -> Row:
        return await self._move(
            campaign_id, [S.DRAFT, S.SCHEDULED], S.SENDING, "start", started_at=datetime.now(UTC)
        )

    async def schedule(self, campaign_id: int, at: datetime) -> Row:
        if at.tzinfo is None:
            raise InvalidInput("at", "the time must include a UTC offset")
        if at <= datetime.now(UTC):
            raise InvalidInput("at", "the time must be in the future")
        return await self._move(
            campaign_id, [S.DRAFT, S.SCHEDULED], S.SCHEDULED, "schedule", scheduled_at=at
        )

    async def pause(self, campaign_id: int) -> Row:
        return await self._move(campaign_id, [S.SENDING], S.PAUSED, "pause")

    async def resume(self, campaign_id: int) -> Row:
        return await self._move(campaign_id, [S.PAUSED], S.SENDING, "resume")

    async def cancel(self, campaign_id: int) -> Row:
        row = await self._move(
            campaign_id, [S.DRAFT, S.SCHEDULED, S.SENDING, S.PAUSED], S.CANCELLED, "cancel"
        )
        # Messages already handed to a worker finish; the rest will never be sent.
        await self.messages.fail_pending(campaign_id, "cancelled")
        return row

    async def retry_failed(self, campaign_id: int) -> Retried:
        """Put failed messages back to pending on purpose (never for undeliverable numbers)."""
        row = await self.campaigns.get(campaign_id)
        if row is None:
            raise NotFound("Campaign", campaign_id)
        if row.status not in (S.SENDING, S.PAUSED, S.COMPLETED):
            raise InvalidState(
                "Campaign", campaign_id, row.status, f"cannot retry a {row.status} campaign"
            )
        count = await self.messages.retry_failed(campaign_id)
        if count and row.status == S.COMPLETED:
            row = await self._move(
                campaign_id, [S.COMPLETED], S.SENDING, "retry", completed_at=None
            )
        return Retried(row, count)
