"""The API processes' Redis client, and the count of round trips it makes.

Round trips are counted where the bytes leave the process: per task (a request's
`redisRoundTrips`) and in total (/metrics).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError


@dataclass
class RoundTrips:
    value: int = 0


_current_trips: ContextVar[RoundTrips | None] = ContextVar("herald_redis_trips", default=None)
_total_trips = RoundTrips()


@contextmanager
def count_round_trips() -> Iterator[RoundTrips]:
    """Count Redis round trips made by this task and the tasks it spawns until exit."""
    counter = RoundTrips()
    token = _current_trips.set(counter)
    try:
        yield counter
    finally:
        _current_trips.reset(token)


def total_round_trips() -> int:
    return _total_trips.value


class _CountingConnection(AbstractConnection):
    # One send_packed_command per command or per pipeline execute: one round trip each.
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _total_trips.value += 1
        counter = _current_trips.get()
        if counter is not None:
            counter.value += 1
        await super().send_packed_command(command, check_health)


def open_redis(url: str, *, timeout: float = 0.05) -> Redis:
    """A client that fails fast: short socket timeouts, one retry (the cache degrades).

    The one immediate retry on a connection error replaces a pooled socket that died in
    a Redis blip; without it the first command on each such socket fails. More retries
    with backoff would stall requests while Redis is really down.
    """
    redis = Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=0,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError, ConnectionError],
    )
    pool = redis.connection_pool
    base = pool.connection_class  # TCP, TLS or unix socket, as the URL chose
    pool.connection_class = type(f"Counting{base.__name__}", (_CountingConnection, base), {})
    return redis
