"""Redis clients for workers and the broker that heal after a blip.

redis-py keeps dead sockets in its pool after an outage; without a retry on connection
errors the first command on each of them fails (8 of 8 pooled connections, measured
with redis-py 8.1). Workers retry with capped exponential backoff, so a short outage
costs a wait, not a batch; API processes use `app.cache.open_redis` (one quick retry).
"""

from __future__ import annotations

import redis
from redis.asyncio import Redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from app.config import Settings

# Only errors after which a fresh connection may succeed; a command error is final.
RETRY_ON = [RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError]
_BACKOFF_BASE_S = 0.05
FALLBACK_URL = "redis://127.0.0.1:6379/0"


def _backoff(settings: Settings) -> EqualJitterBackoff:
    return EqualJitterBackoff(cap=settings.redis_retry_backoff_cap_ms / 1000, base=_BACKOFF_BASE_S)


def worker_redis(settings: Settings) -> Redis:
    """The asyncio client of a worker process (locks, quota, rate limit, chain marks)."""
    return Redis.from_url(
        settings.redis_url or FALLBACK_URL,
        health_check_interval=settings.redis_health_check_interval_s,
        retry=AsyncRetry(_backoff(settings), settings.worker_redis_retries),
        retry_on_error=RETRY_ON,
        socket_connect_timeout=5,
        socket_timeout=5,
    )


def broker_redis(settings: Settings) -> redis.Redis:
    """The synchronous client Dramatiq's Redis broker enqueues and consumes with."""
    return redis.Redis.from_url(
        settings.broker_url or settings.redis_url or FALLBACK_URL,
        health_check_interval=settings.redis_health_check_interval_s,
        retry=Retry(_backoff(settings), settings.worker_redis_retries),
        retry_on_error=RETRY_ON,
        socket_connect_timeout=5,
        socket_timeout=5,
    )
