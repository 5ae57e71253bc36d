"""The Dramatiq broker, configured once per process from Settings."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from app.config import Settings

NAMESPACE = "dramatiq"


def setup_broker(settings: Settings) -> dramatiq.Broker:
    """Create the Redis broker with an explicit middleware list and make it the global one."""
    if settings.redis_url is None:
        raise ValueError("HERALD_REDIS_URL: not set")
    broker = RedisBroker(
        url=settings.redis_url,
        namespace=NAMESPACE,
        middleware=[
            AgeLimit(),  # drop messages older than their max_age instead of acting on stale intent
            TimeLimit(),  # kill actors that overrun their time_limit
            ShutdownNotifications(),  # let long actors notice a worker shutdown
            Callbacks(),
            Retries(max_retries=5, min_backoff=1_000, max_backoff=60_000),
            AsyncIO(),  # run `async def` actors on one event loop per worker process
        ],
    )
    dramatiq.set_broker(broker)
    return broker
