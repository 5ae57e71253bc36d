"""The one place a committed `Changes` takes effect: generations bumped, live progress
published, pauses announced. Called by every transaction's boundary once it committed: the
GraphQL request (schema/extensions.py), the webhook, each worker task."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache import CacheService, bump_generations
from app.campaigns.halts import announce_paused
from app.campaigns.progress import notify_campaign_progress
from app.changes.record import Changes

logger = logging.getLogger(__name__)


async def apply_changes(redis: Redis, changes: Changes, cache: CacheService | None = None) -> None:
    """Progress first (one campaign's scope, debounced), then the namespaces in one
    pipeline, then the pauses. In the API, `cache` bumps the namespaces (counted in its
    metrics, replayed if Redis was down); workers and webhooks bump them directly. Redis
    failing is logged: values then expire by their TTL."""
    for campaign_id, force in changes.progress.items():
        await notify_campaign_progress(redis, campaign_id, force=force)
    if changes.namespaces:
        namespaces = sorted(changes.namespaces)
        if cache is not None:
            await cache.invalidate(*namespaces)
        else:
            try:
                await bump_generations(redis, *namespaces)
            except RedisError as exc:
                logger.warning("cache generations %s not bumped: %s", namespaces, exc)
    for paused in changes.paused:
        await announce_paused(redis, paused)
