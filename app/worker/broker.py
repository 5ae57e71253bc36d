"""The Dramatiq broker, built from Settings by each process that needs one, and `actor()`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

import dramatiq
from dramatiq.middleware import (
    AgeLimit,
    AsyncIO,
    Callbacks,
    Middleware,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from app.config import Settings
from app.db.redis_clients import broker_redis
from app.keyspace import BROKER_NAMESPACE
from app.worker.redis_broker import HealingRedisBroker

QUEUE = "default"

P = ParamSpec("P")


def uses_rabbitmq(settings: Settings) -> bool:
    return bool(settings.broker_url and settings.broker_url.startswith(("amqp://", "amqps://")))


def build_broker(settings: Settings, extra: list[Middleware] | None = None) -> dramatiq.Broker:
    """The broker every Herald process uses, with the explicit middleware list.

    RabbitMQ when HERALD_BROKER_URL is an amqp:// URL (durable queues, persistent
    messages, publisher confirms, acks after the actor ran); otherwise Redis.
    """
    middleware = _middleware(settings, extra)
    if uses_rabbitmq(settings):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker  # the [rabbitmq] extra (pika)

        return RabbitmqBroker(url=settings.broker_url, middleware=middleware, confirm_delivery=True)
    # Delayed messages outlive a Redis outage (app/worker/redis_broker.py).
    return HealingRedisBroker(
        client=broker_redis(settings),  # heals after a Redis blip (app/db/redis_clients.py)
        namespace=BROKER_NAMESPACE,
        middleware=middleware,
    )


def _middleware(settings: Settings, extra: list[Middleware] | None) -> list[Middleware]:
    return [
        AgeLimit(),  # drop messages older than their max_age instead of acting on stale intent
        TimeLimit(time_limit=settings.worker_time_limit_ms),  # kill actors that overrun
        ShutdownNotifications(),  # let long actors notice a worker shutdown
        Callbacks(),
        # Exponential backoff; actors are idempotent so a retry never double-sends.
        Retries(
            max_retries=settings.worker_max_retries,
            min_backoff=settings.worker_min_backoff_ms,
            max_backoff=settings.worker_max_backoff_ms,
        ),
        AsyncIO(),  # run `async def` actors on one event loop per worker process
        *(extra or []),
    ]


def actor(
    broker: dramatiq.Broker, name: str, **options: Any
) -> Callable[[Callable[P, Awaitable[None]]], dramatiq.Actor[P, None]]:
    """Declare an async actor under a dotted name (`campaign.send_batch`) on `broker`.

    Arguments must be ids (JSON scalars): the database is the source of truth when the
    message runs, never a snapshot taken when it was enqueued.
    """

    def decorate(fn: Callable[P, Awaitable[None]]) -> dramatiq.Actor[P, None]:
        declare = dramatiq.actor(actor_name=name, queue_name=QUEUE, broker=broker, **options)
        return declare(fn)

    return decorate
