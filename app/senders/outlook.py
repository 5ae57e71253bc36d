"""What the messaging limit leaves: the portfolio's window now, and per campaign how many it
can reach now and when it should finish (read by the API and /metrics)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.waits import waiting_until
from app.config import Settings
from app.messages.repository import MessageRepository
from app.senders.service import Limit, SenderService
from app.whatsapp.limit import SEEDED_KEY, MessagingLimiter, Usage


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _at(seconds: float | None) -> datetime | None:
    return None if seconds is None else _utc(seconds)


@dataclass(frozen=True)
class Window:
    limit: Limit
    usage: Usage | None  # None: Redis, where the window is counted, did not answer

    @property
    def resets_at(self) -> datetime | None:
        return None if self.usage is None else _at(self.usage.resets_at)


@dataclass(frozen=True)
class Outlook:
    pending: int
    reachable_now: int | None
    estimated_finish_at: datetime | None
    waiting_until: datetime | None


class Outlooks:
    """Reads PostgreSQL only (an API request may run in a read-only transaction); Redis
    may get the window seeded, as dispatch would."""

    def __init__(self, session: AsyncSession, redis: Redis, settings: Settings) -> None:
        self.session = session
        self.redis = redis
        self.settings = settings
        self.senders = SenderService(session, settings)
        self.clock = time.time

        async def reached(since: float) -> list[tuple[str, int]]:
            return await MessageRepository(session).reached_since(_utc(since))

        self.limiter = MessagingLimiter(redis, reached, self.clock)

    async def window(self) -> Window:
        limit = await self.senders.limit()
        try:
            if limit.limit is not None and not await self.redis.exists(SEEDED_KEY):
                await self.limiter.load_seed()  # Redis was emptied: count from PostgreSQL
            return Window(limit, await self.limiter.usage(limit.limit))
        except (RedisError, OSError):
            return Window(limit, None)

    async def campaign(
        self, campaign_id: int, sending: bool, sender_number_id: int | None, pending: int
    ) -> Outlook:
        """Reachable now: the pending messages to contacts whose customer-service window is
        open, plus new recipients up to what the window has left (contacts another campaign
        already reached today also go now: a lower bound). The finish is estimated at the
        sender numbers' throughput, waiting for the slots the rest needs."""
        window = await self.window()
        now = self.clock()
        waiting = _at(await waiting_until(self.redis, campaign_id)) if sending else None
        if window.usage is None:
            return Outlook(pending, None, None, waiting)
        repository = MessageRepository(self.session)
        open_now = await repository.open_window_pending([campaign_id], _utc(now))
        remaining = window.usage.remaining
        free = open_now.get(campaign_id, 0)
        reachable = pending if remaining is None else min(pending, free + remaining)
        rate = await self._throughput(sender_number_id)
        if not pending or not rate:
            return Outlook(pending, reachable, None, waiting)
        start = now
        if reachable < pending:
            [start] = await self.limiter.slot_times(window.usage, [pending - reachable])
        # The last message leaves once its slot is free and the ones before it have gone.
        finish = max(now + pending / rate, start + 1 / rate)
        return Outlook(pending, reachable, _at(finish), waiting)

    async def _throughput(self, sender_number_id: int | None) -> int:
        numbers = await self.senders.senders.all()
        if not numbers:  # the default number joins the table at the first dispatch
            return self.settings.whatsapp_rate_per_second
        return sum(
            n.throughput
            for n in numbers
            if n.takes_traffic and (sender_number_id is None or n.id == sender_number_id)
        )
