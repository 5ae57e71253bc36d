"""How dispatch and webhooks tell the cache that a campaign's statistics moved."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache import Scope, bump_generations
from app.keyspace import CAMPAIGN_PREFIX
from app.live.hub import publish_campaign_changed

logger = logging.getLogger(__name__)


def progress_key(campaign_id: int) -> str:
    return f"{CAMPAIGN_PREFIX}progress:{campaign_id}"


async def notify_campaign_progress(redis: Redis, campaign_id: int, *, force: bool = False) -> bool:
    """Invalidate the campaign's cached stats at most once per second (debounced in Redis).

    A fast campaign changes thousands of rows a second; `force` is for the state changes
    that must be visible at once (started, paused, completed): it also invalidates the
    campaign lists, whose rows show the status. Returns whether it fired. Live subscribers
    are told of every change (app/live/hub.py throttles on the reading side).
    """
    await publish_campaign_changed(redis, campaign_id)
    targets: tuple[str | Scope, ...] = ("stats", Scope("campaigns", campaign_id))
    try:
        if not force and not await redis.set(progress_key(campaign_id), "1", nx=True, ex=1):
            return False
        await bump_generations(redis, *targets, *(("campaigns",) if force else ()))
    except RedisError as exc:
        # Stats then expire by TTL; dispatch itself must not fail over the cache.
        logger.warning("campaign %s progress notification failed: %s", campaign_id, exc)
        return False
    return True
