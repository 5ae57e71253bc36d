"""Dispatch on RabbitMQ (HERALD_BROKER_URL=amqp://...): real workers, a real broker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.worker.broker import build_broker
from app.worker.jobs import open_jobs
from bench.rabbitmq import Node, Vhost, reachable
from tests.conftest import StartWorker
from tests.fake_whatsapp import FakeWhatsApp, seed_campaign, status_counts

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def vhost() -> Iterator[Vhost]:
    assert reachable(), "RabbitMQ must run on 127.0.0.1:5672 (.ci/run starts it)"
    vhost = Vhost()
    yield vhost
    vhost.delete()


async def start(session: AsyncSession, settings: Settings, campaign_id: int) -> None:
    """What startCampaign does: sending, then materialize on the configured broker."""
    await session.execute(
        text("UPDATE campaigns SET status = 'sending', started_at = now() WHERE id = :c"),
        {"c": campaign_id},
    )
    await session.commit()
    open_jobs(settings).materialize(campaign_id)


async def test_an_amqp_broker_url_selects_rabbitmq(settings: Settings, vhost: Vhost) -> None:
    # given / when
    broker = build_broker(settings.model_copy(update={"broker_url": vhost.url}))

    # then
    try:
        assert isinstance(broker, RabbitmqBroker)
        assert broker.confirm_delivery
    finally:
        broker.close()


async def test_campaign_on_rabbitmq_reaches_each_contact_once(
    session: AsyncSession,
    settings: Settings,
    vhost: Vhost,
    fake: FakeWhatsApp,
    start_worker: StartWorker,
) -> None:
    # given workers on the machine's RabbitMQ (a vhost of this run)
    campaign_id = await seed_campaign(session, 1_000, opted_out=10)
    on_rabbit = settings.model_copy(update={"broker_url": vhost.url})
    worker = await start_worker(broker_url=vhost.url, whatsapp_rate_per_second=100_000)

    # when
    await start(session, on_rabbit, campaign_id)
    await worker.completed(session, campaign_id)
    worker.stop()

    # then
    assert await status_counts(session, campaign_id) == {"sent": 990}
    assert len(fake.sends) == 990
    assert set(fake.sends.values()) == {1}


async def test_rabbitmq_restart_mid_campaign_loses_nothing(
    session: AsyncSession, settings: Settings, fake: FakeWhatsApp, start_worker: StartWorker
) -> None:
    # given a RabbitMQ node of this test's own, and a campaign paced at 250 messages/s:
    # after 400 sends, at least 6 s of sending remain, and stopping the broker takes ~1 s
    node = await asyncio.to_thread(Node)
    try:
        campaign_id = await seed_campaign(session, 2_000)
        on_node = settings.model_copy(update={"broker_url": node.url})
        worker = await start_worker(
            broker_url=node.url,
            whatsapp_rate_per_second=250,
            dispatch_batch_size=50,
            dispatch_recovery_interval_s=1,
        )
        await start(session, on_node, campaign_id)

        async def started() -> bool:
            return sum(fake.sends.values()) >= 400

        await worker.wait_until(started, "400 sends")

        # when the broker restarts mid-campaign
        await asyncio.to_thread(node.stop_app)
        stopped_at = sum(fake.sends.values())
        await asyncio.to_thread(node.start_app)
        await worker.completed(session, campaign_id)
        worker.stop()
    finally:
        await asyncio.to_thread(node.stop)

    # then it was mid-campaign, and still every contact was sent exactly once
    assert stopped_at < 2_000
    assert await status_counts(session, campaign_id) == {"sent": 2_000}
    assert len(fake.sends) == 2_000
    assert set(fake.sends.values()) == {1}
