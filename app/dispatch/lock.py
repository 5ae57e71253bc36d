"""Redis lock so two workers never run the same campaign step at once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import Redis

# Delete only if the key still holds our token: an expired lock re-taken by another
# worker must not be released by the first one.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


def campaign_lock_key(campaign_id: int) -> str:
    return f"campaign:lock:{campaign_id}"


class RedisLock:
    def __init__(self, redis: Redis, key: str, ttl_ms: int) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = ttl_ms
        self.token = uuid.uuid4().hex

    async def acquire(self) -> bool:
        return bool(await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    async def release(self) -> bool:
        return bool(await self.redis.eval(_RELEASE, 1, self.key, self.token))


@asynccontextmanager
async def try_lock(redis: Redis, key: str, ttl_ms: int) -> AsyncIterator[bool]:
    """Yield whether the lock was taken; release it (by token) on exit if it was."""
    lock = RedisLock(redis, key, ttl_ms)
    acquired = await lock.acquire()
    try:
        yield acquired
    finally:
        if acquired:
            await lock.release()
