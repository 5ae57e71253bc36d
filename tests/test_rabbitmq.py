"""Dispatch on RabbitMQ (HERALD_BROKER_URL=amqp://...): real workers, a real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.worker.broker import build_broker
from app.worker.jobs import open_jobs
from bench.rabbitmq import Node
from tests.conftest import StartWorker
from tests.fake_whatsapp import FakeWhatsApp, seed_campaign, status_counts

pytestmark = pytest.mark.asyncio


@pytest.fixture
def broker_url(rabbitmq: Node) -> Iterator[str]:
    """A vhost of this test's own on the run's node: no message an earlier test left behind
    (a delayed sweep of a campaign id used again) reaches this test's workers."""
    name = f"test_{uuid.uuid4().hex[:10]}"
    url = rabbitmq.add_vhost(name)
    yield url
    rabbitmq.rabbitmqctl("delete_vhost", name)


async def start(session: AsyncSession, settings: Settings, campaign_id: int) -> None:
    """What startCampaign does: sending, then materialize on the configured broker."""
    await session.execute(
        text("UPDATE campaigns SET status = 'sending', started_at = now() WHERE id = :c"),
        {"c": campaign_id},
    )
    await session.commit()
    open_jobs(settings).materialize(campaign_id)


async def test_an_amqp_broker_url_selects_rabbitmq(settings: Settings, rabbitmq: Node) -> None:
    # given / when
    broker = build_broker(settings.model_copy(update={"broker_url": rabbitmq.url}))

    # then
    try:
        assert isinstance(broker, RabbitmqBroker)
        assert broker.confirm_delivery
    finally:
        broker.close()


async def test_campaign_on_rabbitmq_reaches_each_contact_once(
    session: AsyncSession,
    settings: Settings,
    broker_url: str,
    fake: FakeWhatsApp,
    start_worker: StartWorker,
) -> None:
    # given workers on RabbitMQ
    campaign_id = await seed_campaign(session, 1_000, opted_out=10)
    on_rabbit = settings.model_copy(update={"broker_url": broker_url})
    worker = await start_worker(broker_url=broker_url, whatsapp_rate_per_second=100_000)

    # when
    await start(session, on_rabbit, campaign_id)
    await worker.completed(session, campaign_id)
    worker.stop()

    # then
    assert await status_counts(session, campaign_id) == {"sent": 990}
    assert len(fake.sends) == 990
    assert set(fake.sends.values()) == {1}


async def test_rabbitmq_restart_mid_campaign_loses_nothing(
    session: AsyncSession,
    settings: Settings,
    rabbitmq: Node,
    broker_url: str,
    fake: FakeWhatsApp,
    start_worker: StartWorker,
) -> None:
    # given a campaign paced at 250 messages/s: after 400 sends, at least 6 s of sending
    # remain, and stopping the broker takes ~1 s
    campaign_id = await seed_campaign(session, 2_000)
    on_node = settings.model_copy(update={"broker_url": broker_url})
    worker = await start_worker(
        broker_url=broker_url,
        whatsapp_rate_per_second=250,
        dispatch_batch_size=50,
        dispatch_recovery_interval_s=1,
    )
    await start(session, on_node, campaign_id)

    async def started() -> bool:
        return sum(fake.sends.values()) >= 400

    await worker.wait_until(started, "400 sends")

    # when the broker restarts mid-campaign
    try:
        await asyncio.to_thread(rabbitmq.stop_app)
        stopped_at = sum(fake.sends.values())
    finally:
        await asyncio.to_thread(rabbitmq.start_app)
    await worker.completed(session, campaign_id)
    worker.stop()

    # then it was mid-campaign, and still every contact was sent exactly once
    assert stopped_at < 2_000
    assert await status_counts(session, campaign_id) == {"sent": 2_000}
    assert len(fake.sends) == 2_000
    assert set(fake.sends.values()) == {1}
