"""Dispatch under Redis faults, awaited directly: Redis is reached through a proxy we cut."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns import tasks as campaign_tasks
from app.config import Settings
from app.messages import tasks as message_tasks
from bench.tcp_proxy import TcpProxy
from tests.fake_whatsapp import (
    FakeWhatsApp,
    seed_campaign,
    status_counts,
)
from tests.test_dispatch import (
    drain,
    make_deps_fixture,  # noqa: F401 (the `make_deps` fixture)
    set_status,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture
def proxy(settings: Settings) -> Iterator[TcpProxy]:
    """A proxy in front of the test run's Redis."""
    with TcpProxy.before(str(settings.redis_url)) as proxy:
        yield proxy


def through(proxy: TcpProxy, settings: Settings) -> dict[str, Any]:
    """Settings overrides that send this Deps' Redis traffic through `proxy`, no retries."""
    return {"redis_url": proxy.url_for(str(settings.redis_url)), "worker_redis_retries": 0}


async def test_redis_failing_mid_batch_records_what_was_sent_and_releases_the_rest(
    session: AsyncSession,
    make_deps: Any,
    fake: FakeWhatsApp,
    proxy: TcpProxy,
    settings: Settings,
) -> None:
    # given a batch of 12 sent in waves of 4, and Redis cut when the 4th send is accepted
    campaign_id = await seed_campaign(session, 12)
    await set_status(session, campaign_id, "sending")
    deps = make_deps(
        dispatch_batch_size=12, dispatch_send_concurrency=4, **through(proxy, settings)
    )
    await campaign_tasks.materialize(deps, campaign_id)
    fake.on_send = lambda total: proxy.cut() if total == 4 else None

    # when the rate limiter's next call fails
    with pytest.raises(RedisConnectionError):
        await message_tasks.send_batch(deps, campaign_id)

    # then the 4 sends are recorded with their provider ids, the 8 others are pending again
    assert await status_counts(session, campaign_id) == {"sent": 4, "pending": 8}
    ids = await session.execute(
        text("SELECT count(DISTINCT provider_message_id) FROM messages WHERE status = 'sent'")
    )
    assert ids.scalar_one() == 4

    # and once Redis is back the retried chain sends each remaining contact once
    fake.on_send = None
    proxy.restore()
    assert await drain(deps, campaign_id) == 8
    assert await status_counts(session, campaign_id) == {"sent": 12}
    assert set(fake.sends.values()) == {1}
    assert len(fake.sends) == 12


async def test_redis_down_before_the_quota_claims_nothing_and_sends_nothing(
    session: AsyncSession,
    make_deps: Any,
    fake: FakeWhatsApp,
    proxy: TcpProxy,
    settings: Settings,
) -> None:
    # given
    campaign_id = await seed_campaign(session, 5)
    await set_status(session, campaign_id, "sending")
    deps = make_deps(**through(proxy, settings))
    await campaign_tasks.materialize(deps, campaign_id)

    # when the quota cannot be asked
    proxy.cut()
    with pytest.raises(RedisConnectionError):
        await message_tasks.send_batch(deps, campaign_id)

    # then nothing was claimed or sent: in doubt, wait
    assert await status_counts(session, campaign_id) == {"pending": 5}
    assert sum(fake.attempts.values()) == 0
