"""How workers and webhooks tell the cache that contacts changed (opt-outs, numbers found
invalid); mutations do it through schema/cache/invalidation.py."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache import bump_generations

logger = logging.getLogger(__name__)


async def notify_contacts_changed(redis: Redis) -> None:
    """A worker or webhook changed contacts (opt-out, number found invalid): lists, counts."""
    try:
        await bump_generations(redis, "contacts", "stats")
    except RedisError as exc:
        logger.warning("contacts change notification failed: %s", exc)
