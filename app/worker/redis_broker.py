"""Dramatiq's Redis broker, with delayed messages that outlive a Redis outage.

A worker's consumer thread holds the delayed messages of its queue in memory until they
are due; in Redis they wait meanwhile in the worker's "acks" set. On a connection error
Dramatiq drops that memory, and when the enqueue of a due message fails, the requeue that
follows raises redis-py's ConnectionError out of the thread, which dies: that process
never fetches a delayed message again. Either way the messages stay in the acks set of a
live worker, which only a restart of that worker hands back, so sweeps, retries, lock
retries and quota waits were lost for good (reproduced in tests/test_dispatch_broker.py).

Here the delayed messages a consumer held when it failed are requeued by the next
consumer of the queue before it fetches, and a failed requeue or a Redis timeout is a
connection error, which the consumer thread survives.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import ConnectionClosed

from app.compat import RedisConsumer

# redis-py raises these when Redis cannot be reached or answer in time.
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


class HealingRedisBroker(RedisBroker):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        # Per delay queue: redis ids of messages a failed consumer held, to requeue.
        self.orphans: dict[str, set[str]] = {}

    @property
    def consumer_class(self) -> type[RedisConsumer]:
        return _HealingConsumer


class _HealingConsumer(RedisConsumer):
    broker: HealingRedisBroker

    def __init__(self, broker: HealingRedisBroker, queue_name: str, prefetch: int, timeout: int):
        super().__init__(broker, queue_name, prefetch, timeout)
        # Messages of a main queue wait in the worker's work queue, which survives a
        # consumer; only a delay queue's messages live in the consumer thread alone.
        self.delayed = queue_name.endswith(".DQ")
        self.held: set[str] = set()

    def __next__(self) -> MessageProxy | None:
        orphans = self.broker.orphans.get(self.queue_name)
        try:
            if orphans:
                self.broker.do_requeue(self.queue_name, *orphans)
                orphans.clear()
            message: MessageProxy | None = super().__next__()
        except redis.TimeoutError as exc:
            raise ConnectionClosed(exc) from None
        if message is not None and self.delayed:
            self.held.add(message.options["redis_message_id"])
        return message

    def ack(self, message: MessageProxy) -> None:
        try:
            super().ack(message)
        except redis.TimeoutError as exc:
            raise ConnectionClosed(exc) from None
        self.held.discard(message.options["redis_message_id"])

    def nack(self, message: MessageProxy) -> None:
        try:
            super().nack(message)
        except redis.TimeoutError as exc:
            raise ConnectionClosed(exc) from None
        self.held.discard(message.options["redis_message_id"])

    def requeue(self, messages: Iterable[MessageProxy]) -> None:
        messages = list(messages)
        try:
            super().requeue(messages)
        except _UNREACHABLE as exc:
            self._orphan()  # the consumer thread lets go of all of them now
            raise ConnectionClosed(exc) from None
        self.held.difference_update(m.options["redis_message_id"] for m in messages)

    def close(self) -> None:
        self._orphan()
        super().close()

    def _orphan(self) -> None:
        if self.held:
            self.broker.orphans.setdefault(self.queue_name, set()).update(self.held)
            self.held.clear()
