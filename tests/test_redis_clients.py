"""Redis clients heal after a blip: a proxy in front of Redis is cut and restored."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import dramatiq
import pytest

from app.cache import open_redis
from app.config import Settings
from app.db.redis_clients import broker_redis, worker_redis
from app.keyspace import BROKER_NAMESPACE
from app.worker.broker import QUEUE, build_broker
from bench.tcp_proxy import TcpProxy

pytestmark = pytest.mark.asyncio
POOLED = 8


@pytest.fixture
def proxy(settings: Settings) -> Iterator[TcpProxy]:
    with TcpProxy.before(str(settings.redis_url)) as proxy:
        yield proxy


def proxied(settings: Settings, proxy: TcpProxy) -> Settings:
    return settings.model_copy(update={"redis_url": proxy.url_for(str(settings.redis_url))})


async def test_api_client_survives_stale_pooled_connections(
    settings: Settings, proxy: TcpProxy
) -> None:
    # given a pool of 8 connections, all killed by a blip that is over
    redis = open_redis(proxy.url_for(str(settings.redis_url)))
    try:
        await asyncio.gather(*(redis.ping() for _ in range(POOLED)))
        proxy.cut()
        proxy.restore()

        # when 8 commands use the 8 stale connections at once
        results = await asyncio.gather(
            *(redis.ping() for _ in range(POOLED)), return_exceptions=True
        )
    finally:
        await redis.aclose()

    # then none fails
    assert results == [True] * POOLED


async def test_worker_client_survives_stale_connections_and_waits_out_an_outage(
    settings: Settings, proxy: TcpProxy
) -> None:
    # given a worker's pool of 8 connections killed by a blip
    redis = worker_redis(proxied(settings, proxy))
    try:
        await asyncio.gather(*(redis.ping() for _ in range(POOLED)))
        proxy.cut()
        proxy.restore()
        after_blip = await asyncio.gather(
            *(redis.ping() for _ in range(POOLED)), return_exceptions=True
        )

        # when a command is issued while Redis is down, and Redis comes back a second later
        proxy.cut()
        asyncio.get_running_loop().call_later(1.0, proxy.restore)
        during_outage = await redis.incr("campaign:test:outage")
    finally:
        await redis.delete("campaign:test:outage")
        await redis.aclose()

    # then every command succeeded, the one during the outage exactly once
    assert after_blip == [True] * POOLED
    assert during_outage == 1


async def test_broker_enqueues_through_a_blip_and_an_outage(
    settings: Settings, proxy: TcpProxy
) -> None:
    # given the broker's own client, through the proxy
    s = proxied(settings, proxy)
    broker = build_broker(s)
    client = broker_redis(settings)

    def enqueue() -> None:
        message: dramatiq.Message[None] = dramatiq.Message(
            queue_name=QUEUE, actor_name="test.noop", args=(), kwargs={}, options={}
        )
        broker.enqueue(message)

    try:
        enqueue()
        proxy.cut()
        proxy.restore()

        # when one enqueue follows a blip, another falls in a 1 s outage
        enqueue()
        proxy.cut()
        threading.Timer(1.0, proxy.restore).start()
        enqueue()
    finally:
        broker.close()

    # then all three messages are queued
    assert client.llen(f"{BROKER_NAMESPACE}:{QUEUE}") == 3
    client.close()
