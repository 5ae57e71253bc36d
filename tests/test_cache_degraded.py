"""Degraded mode: a redis-server of the test's own is killed, slowed and restarted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis as sync_redis
from redis.asyncio import Redis

from app.cache import CacheService, RequestCache, open_redis
from app.config import Settings
from bench.servers import OwnRedis
from tests.test_cache import CALLS, DB, FakeContext, data  # noqa: F401  (autouse fixture)
from tests.test_cache import SCHEMA as CACHED_SCHEMA

pytestmark = pytest.mark.asyncio

QUERY = "{ totals { total } }"
RETRY_AFTER = 0.2


@pytest.fixture
def spare() -> Iterator[OwnRedis]:
    server = OwnRedis()
    yield server
    server.close()


@pytest_asyncio.fixture
async def client(spare: OwnRedis) -> AsyncIterator[Redis]:
    redis = open_redis(spare.url)
    yield redis
    await redis.aclose()


async def ask(service: CacheService) -> object:
    result = await CACHED_SCHEMA.execute(QUERY, context_value=FakeContext(RequestCache(service)))
    assert result.errors is None, result.errors
    return result.data


async def test_killed_redis_degrades_then_recovers(
    spare: OwnRedis, client: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    service = CacheService(client, settings, retry_after=RETRY_AFTER)
    # given: a warm value
    assert await ask(service) == {"totals": {"total": 7}}
    assert await ask(service) == {"totals": {"total": 7}}
    assert (CALLS["totals"], service.metrics["stats"].hits) == (1, 1)
    # when: Redis dies and the data changes
    spare.stop()
    DB["total"] = 8
    with caplog.at_level(logging.INFO, logger="app.cache"):
        answers = [await ask(service), await ask(service)]  # the 2nd skips Redis entirely
        await asyncio.sleep(RETRY_AFTER * 1.5)
        answers += [await ask(service), await ask(service)]  # one failed probe, then skip
        invalidated = await service.invalidate("stats")
        # then: correct answers from the source, one warning, one error per probe
        assert answers == [{"totals": {"total": 8}}] * 4
        assert CALLS["totals"] == 5
        assert invalidated is False
        metrics = service.metrics["stats"]
        assert (metrics.hits, metrics.misses, metrics.errors) == (1, 5, 2)
        assert service.available is False
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert [r.getMessage().split(" (")[0] for r in warnings] == ["Redis cache unavailable"]

        # when: Redis is back on the same port
        spare.start()
        await asyncio.sleep(RETRY_AFTER * 1.5)
        DB["total"] = 9
        recovered = [await ask(service), await ask(service), await ask(service)]
    # then: the first fills, the next ones hit; the missed invalidation was replayed
    assert recovered == [{"totals": {"total": 9}}] * 3
    assert CALLS["totals"] == 6
    assert (service.metrics["stats"].hits, service.available) == (3, True)
    assert await client.get("cache:gen:stats") == b"1"
    messages = [r.getMessage() for r in caplog.records if r.name == "app.cache"]
    assert messages[-1] == "Redis cache available again"
    assert len(messages) == 2


async def test_slow_redis_answers_within_the_socket_timeout(
    spare: OwnRedis, client: Redis, settings: Settings
) -> None:
    service = CacheService(client, settings, retry_after=RETRY_AFTER)
    await client.ping()  # connection open; the stall below hits a read, not a connect
    blocker = sync_redis.Redis(host="127.0.0.1", port=spare.port)
    stall = asyncio.create_task(asyncio.to_thread(blocker.execute_command, "DEBUG", "SLEEP", "3"))
    await asyncio.sleep(0.05)  # the server is now blocked
    answer = await ask(service)
    still_stalled = not stall.done()
    await stall
    blocker.close()
    assert answer == {"totals": {"total": 7}}
    # the socket timeout (50 ms) gave up on Redis: the answer came while the stall (3 s)
    # still held it, and the read that gave up is counted as the cache's error
    assert still_stalled
    assert service.metrics["stats"].errors == 1
