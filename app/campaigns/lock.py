"""Redis lock so two workers never run the same campaign step at once."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.keyspace import CAMPAIGN_PREFIX

logger = logging.getLogger(__name__)

# Delete only if the key still holds our token: an expired lock re-taken by another
# worker must not be released by the first one.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


# Taken, or already ours: a retried SET whose first reply was lost must not lock us out
# of our own lock until it expires.
_ACQUIRE = """
if redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
    return 1
end
if redis.call('get', KEYS[1]) == ARGV[1] then
    return 1
end
return 0
"""


def campaign_lock_key(campaign_id: int) -> str:
    return f"{CAMPAIGN_PREFIX}lock:{campaign_id}"


class RedisLock:
    def __init__(self, redis: Redis, key: str, ttl_ms: int) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = uuid.uuid4().hex

    async def acquire(self) -> bool:
        return bool(await self.redis.eval(_ACQUIRE, 1, self.key, self.token, self.ttl_ms))

    async def release(self) -> bool:
        return bool(await self.redis.eval(_RELEASE, 1, self.key, self.token))


@asynccontextmanager
async def try_lock(redis: Redis, key: str, ttl_ms: int) -> AsyncIterator[bool]:
    """Yield whether the lock was taken; release it (by token) on exit if it was.

    A Redis error while taking it propagates (the caller's task is retried: in doubt,
    wait); one while releasing it is logged, and the lock expires by its TTL.
    """
    lock = RedisLock(redis, key, ttl_ms)
    acquired = await lock.acquire()
    try:
        yield acquired
    finally:
        if acquired:
            try:
                await lock.release()
            except RedisError as exc:
                logger.warning("lock %s left to expire: %s", key, exc)
