"""A campaign's wait for the messaging limit's window: until when, while it waits (a Redis
mark set by its send chain, read by the API and live progress)."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.keyspace import CAMPAIGN_PREFIX

logger = logging.getLogger(__name__)


def window_key(campaign_id: int) -> str:
    return f"{CAMPAIGN_PREFIX}window:{campaign_id}"


async def mark_window_wait(redis: Redis, campaign_id: int, until: float, wait_ms: int) -> None:
    """Best effort: only what is shown depends on it."""
    try:
        await redis.set(window_key(campaign_id), str(until), px=wait_ms)
    except RedisError as exc:
        logger.warning("campaign %s: window wait not marked: %r", campaign_id, exc)


async def waiting_until(redis: Redis, campaign_id: int) -> float | None:
    """Unix seconds; None when not waiting, or unknown (Redis did not answer)."""
    try:
        value = await redis.get(window_key(campaign_id))
    except (RedisError, OSError):
        return None
    return None if value is None else float(value)
