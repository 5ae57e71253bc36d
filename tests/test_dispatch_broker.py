"""Herald's Redis broker: delayed messages (sweeps, retries, quota waits) outlive an outage."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import dramatiq
import pytest
import redis
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import ConnectionClosed

from app.config import Settings
from app.worker.broker import build_broker
from app.worker.redis_broker import HealingRedisBroker
from bench.tcp_proxy import TcpProxy
from tests.fake_whatsapp import WAIT_S

QUEUE = "herald-test"
DELAYED = 16


@pytest.fixture
def proxy(settings: Settings) -> Iterator[TcpProxy]:
    """Redis through a TCP proxy that the test can cut."""
    with TcpProxy.before(str(settings.redis_url)) as proxy:
        yield proxy


def proxied_broker(settings: Settings, proxy: TcpProxy) -> HealingRedisBroker:
    """Herald's broker through the proxy, retrying once, so that an outage is felt at once."""
    url = proxy.url_for(str(settings.redis_url))
    broker = build_broker(settings.model_copy(update={"redis_url": url, "worker_redis_retries": 1}))
    assert isinstance(broker, HealingRedisBroker)
    return broker


def wait_for(condition: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT_S:.0f} s: {condition}"
        time.sleep(0.05)


def fetch(consumer: Consumer, count: int) -> list[MessageProxy]:
    """The next `count` messages of a consumer."""
    messages: list[MessageProxy] = []
    deadline = time.monotonic() + WAIT_S
    while len(messages) < count:
        assert time.monotonic() < deadline, f"{len(messages)} of {count} fetched in {WAIT_S} s"
        message = next(consumer)
        if message is not None:
            messages.append(message)
    return messages


def test_delayed_messages_a_worker_held_during_a_redis_outage_still_run(
    settings: Settings, proxy: TcpProxy
) -> None:
    # given a worker holding 16 delayed messages (in Redis, in its acks set) that come due
    # while Redis is unreachable for it
    client = redis.Redis.from_url(str(settings.redis_url))
    broker = proxied_broker(settings, proxy)
    ran: list[int] = []
    lock = threading.Lock()

    def record(n: int) -> None:
        with lock:
            ran.append(n)

    actor = dramatiq.actor(actor_name="test.record", queue_name=QUEUE, broker=broker)(record)
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    try:
        for n in range(DELAYED):
            actor.send_with_options(args=(n,), delay=3_000 + 100 * n)
        wait_for("the worker fetched them", lambda: client.llen(f"dramatiq:{QUEUE}.DQ") == 0)
        assert ran == []

        # when Redis is cut for the worker until they are all due, then restored
        proxy.cut()
        time.sleep(3_000 / 1000 + 100 * DELAYED / 1000 + 1)
        proxy.restore()

        # then every one of them runs, once, and the worker still consumes delayed messages
        wait_for("all of them ran", lambda: len(ran) >= DELAYED)
        actor.send_with_options(args=(DELAYED,), delay=100)
        wait_for("a new delayed message ran", lambda: len(ran) > DELAYED)
    finally:
        worker.stop()
        broker.close()
        client.close()
    assert sorted(ran) == list(range(DELAYED + 1))


def noop() -> None:
    pass


def test_a_requeue_redis_refuses_is_a_connection_error_and_the_next_consumer_retries_it(
    settings: Settings, proxy: TcpProxy
) -> None:
    # given a delay queue consumer holding two delayed messages
    client = redis.Redis.from_url(str(settings.redis_url))
    broker = proxied_broker(settings, proxy)
    actor = dramatiq.actor(actor_name="test.noop", queue_name=QUEUE, broker=broker)(noop)
    for _ in range(2):
        actor.send_with_options(delay=60_000)
    first = broker.consume(f"{QUEUE}.DQ", prefetch=10, timeout=100)
    held = fetch(first, 2)

    # when Redis cannot be reached as the worker's consumer thread hands them back (what it
    # does after a failed enqueue of a due message)
    proxy.cut()
    with pytest.raises(ConnectionClosed):  # which the thread survives; redis-py's would kill it
        first.requeue(held)
    proxy.restore()

    # then the queue's next consumer puts them back in the delay queue before fetching
    second = broker.consume(f"{QUEUE}.DQ", prefetch=10, timeout=100)
    again = fetch(second, 2)
    assert {m.message_id for m in again} == {m.message_id for m in held}
    broker.close()
    client.close()
