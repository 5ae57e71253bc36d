"""Campaign dispatch through real Dramatiq worker processes, a real broker and a fake Cloud API."""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.whatsapp.limit import REACH_KEY
from bench.tcp_proxy import TcpProxy
from tests.conftest import GqlClient, Server, StartWorker
from tests.fake_whatsapp import FakeWhatsApp, campaign_status, phone, seed_campaign, status_counts

pytestmark = pytest.mark.asyncio

START = """
mutation Start($id: ID!) {
  startCampaign(id: $id) { __typename }
}
"""
STATS = """
query Stats($id: ID!) {
  campaign(id: $id) { status stats { total pending sending sent delivered read failed } }
}
"""


async def test_campaign_reaches_each_eligible_contact_exactly_once(
    gql: GqlClient, session: AsyncSession, fake: FakeWhatsApp, start_worker: StartWorker
) -> None:
    # given 2,000 targeted contacts: 50 opted out, 30 known invalid, 300 in both categories,
    # and 20 numbers the provider rejects as undeliverable
    campaign_id = await seed_campaign(
        session, 2_000, opted_out=50, invalid=30, other_category_overlap=300
    )
    fake.undeliverable.update(phone(i).lstrip("+") for i in range(100, 120))
    worker = await start_worker(whatsapp_rate_per_second=100_000)

    # when
    result = await gql.ok(START, {"id": str(campaign_id)})
    assert result["startCampaign"]["__typename"] == "StartCampaignSuccess"
    await worker.completed(session, campaign_id)
    worker.stop()

    # then
    eligible = {phone(i).lstrip("+") for i in range(80, 2_000)}
    rejected = {phone(i).lstrip("+") for i in range(100, 120)}
    assert set(fake.sends) == eligible - rejected
    assert set(fake.sends.values()) == {1}
    assert not {phone(i).lstrip("+") for i in range(80)} & set(fake.attempts)
    counts = await status_counts(session, campaign_id)
    assert counts == {"sent": 1_900, "failed": 20}
    invalid = await session.execute(
        text("SELECT count(*) FROM contacts WHERE whatsapp_status = 'invalid'")
    )
    assert invalid.scalar_one() == 50
    stats = (await gql.ok(STATS, {"id": str(campaign_id)}))["campaign"]
    assert stats["status"] == "COMPLETED"
    assert stats["stats"] == {
        "total": 1_920,
        "pending": 0,
        "sending": 0,
        "sent": 1_900,
        "delivered": 0,
        "read": 0,
        "failed": 20,
    }


async def test_killed_worker_never_causes_a_second_send(
    gql: GqlClient, session: AsyncSession, fake: FakeWhatsApp, start_worker: StartWorker
) -> None:
    # given a campaign paced at 500 messages/s, and a provider configured as posting no
    # status webhooks that turns slow after 400 sends, so that both processes hold claimed
    # batches from then on, and the campaign is still far from its end
    campaign_id = await seed_campaign(session, 2_000)
    slowed = threading.Event()

    def slow_down(total: int) -> None:
        if total == 400:
            fake.latency_s = 0.5
            slowed.set()

    fake.on_send = slow_down
    env: dict[str, object] = {
        "whatsapp_status_webhooks": False,
        "whatsapp_rate_per_second": 500,
        "dispatch_batch_size": 100,
        "dispatch_sending_timeout_s": 2,
        # A process killed inside a locked step leaves the campaign lock to expire.
        "dispatch_lock_ttl_ms": 3_000,
    }
    first = await start_worker(**env)
    await gql.ok(START, {"id": str(campaign_id)})

    async def mid_campaign() -> bool:
        return slowed.is_set()

    await first.wait_until(mid_campaign, "400 sends")

    # when one worker process is killed mid-request, dramatiq stops its sibling, and a new
    # worker is started
    await asyncio.sleep(0.3)
    first.kill_busiest_child()
    sent_when_killed = sum(fake.sends.values())
    fake.latency_s = 0
    await first.exited()
    second = await start_worker(**env)
    await second.completed(session, campaign_id)
    second.stop()

    # then the provider saw at most one send per contact; nothing was left open
    assert max(fake.sends.values()) == 1
    counts = await status_counts(session, campaign_id)
    assert set(counts) <= {"sent", "failed"}
    assert sum(counts.values()) == 2_000
    failed = await session.execute(
        text("SELECT DISTINCT error FROM messages WHERE status = 'failed'")
    )
    assert set(failed.scalars()) <= {"unknown"}
    # every contact recorded as sent was sent exactly once; unknown ones at most once
    sent = await session.execute(
        text(
            "SELECT c.phone FROM messages m JOIN contacts c ON c.id = m.contact_id "
            "WHERE m.status = 'sent'"
        )
    )
    assert all(fake.sends[p.lstrip("+")] == 1 for p in sent.scalars())
    assert counts["sent"] >= 400
    # the kill came mid-campaign; whatever the dead process held ended sent (its record
    # reached PostgreSQL) or failed "unknown", never resent (asserted above)
    assert sent_when_killed < 2_000


async def test_messaging_limit_reached_mid_campaign_waits(
    gql: GqlClient,
    session: AsyncSession,
    settings: Settings,
    fake: FakeWhatsApp,
    start_worker: StartWorker,
) -> None:
    # given a messaging limit of 250 with 400 targeted contacts, two worker processes
    campaign_id = await seed_campaign(session, 400)
    worker = await start_worker(
        whatsapp_messaging_limit="250", dispatch_batch_size=50, whatsapp_rate_per_second=100_000
    )
    client = redis.Redis.from_url(str(settings.redis_url))

    # when
    await gql.ok(START, {"id": str(campaign_id)})

    async def limit_reached() -> bool:
        return await status_counts(session, campaign_id) == {"sent": 250, "pending": 150}

    await worker.wait_until(limit_reached, "250 sent and 150 pending")
    await asyncio.sleep(1.0)  # nothing more goes out while waiting
    worker.stop()

    # then the campaign waits (still sending, nothing failed), exactly at the limit
    assert sum(fake.sends.values()) == 250
    assert set(fake.sends.values()) == {1}
    assert await status_counts(session, campaign_id) == {"sent": 250, "pending": 150}
    assert await campaign_status(session, campaign_id) == "sending"
    assert client.zcard(REACH_KEY) == 250
    # each waiting message waits for its slot, a day after the reach it replaces
    waits = await session.execute(
        text(
            "SELECT min(extract(epoch FROM not_before - now())), "
            "max(extract(epoch FROM not_before - now())) FROM messages WHERE status = 'pending'"
        )
    )
    shortest, longest = waits.one()
    assert 86_000 < shortest <= longest <= 86_400
    # the send chains sleep in the broker's delay queue until the window slides
    assert client.hlen("dramatiq:default.DQ.msgs") >= 1


def _simulated_undeliverable(index: int, rate: float) -> bool:
    """The simulated provider's own rule: the same numbers always fail."""
    return hashlib.sha256(phone(index).encode()).digest()[0] / 256 < rate


async def test_demo_campaign_with_the_simulated_provider_moves_past_sent(
    gql: GqlClient,
    session: AsyncSession,
    settings: Settings,
    server: Server,
    start_worker: StartWorker,
) -> None:
    # given a demo-sized campaign sent at full speed, so that ~3,000 status callbacks
    # reach the API's webhook within a few seconds
    size = 1_200
    campaign_id = await seed_campaign(session, size)
    worker = await start_worker(
        whatsapp_provider="simulated",
        whatsapp_webhook_url=f"{server.url}/webhooks/whatsapp",
        whatsapp_rate_per_second=100_000,
    )

    # when
    await gql.ok(START, {"id": str(campaign_id)})

    async def settled() -> bool:
        counts = await status_counts(session, campaign_id)
        return sum(counts.values()) == size and not {"pending", "sending", "sent"} & set(counts)

    async def messages() -> dict[str, int]:
        return await status_counts(session, campaign_id)

    await worker.wait_until(settled, "every message past sent", messages)
    worker.stop()

    # then every message moved past `sent` by itself: delivered or read, or failed for the
    # numbers the simulation makes undeliverable; no callback was given up on
    counts = await status_counts(session, campaign_id)
    failed = sum(_simulated_undeliverable(i, settings.simulated_failure_rate) for i in range(size))
    assert counts.get("failed", 0) == failed
    assert counts["delivered"] + counts["read"] == size - failed
    assert counts["read"] > 0
    assert "lost after" not in worker.output()
    assert await campaign_status(session, campaign_id) == "completed"


async def test_chains_lost_in_a_redis_outage_are_rearmed_without_a_restart(
    gql: GqlClient,
    session: AsyncSession,
    settings: Settings,
    fake: FakeWhatsApp,
    start_worker: StartWorker,
) -> None:
    # given workers reaching Redis through a proxy, with few client retries, so an outage
    # drops their chains' enqueues (and Dramatiq's retries) as a long outage would
    campaign_id = await seed_campaign(session, 1_500)
    client = redis.Redis.from_url(str(settings.redis_url))
    with TcpProxy.before(str(settings.redis_url)) as proxy:
        cut = threading.Event()

        def cut_mid_campaign(total: int) -> None:
            if total == 300:
                proxy.cut()
                cut.set()

        fake.on_send = cut_mid_campaign
        worker = await start_worker(
            redis_url=proxy.url_for(str(settings.redis_url)),
            worker_redis_retries=2,
            whatsapp_rate_per_second=500,
            dispatch_batch_size=50,
            dispatch_recovery_interval_s=1,
        )
        await gql.ok(START, {"id": str(campaign_id)})

        async def redis_cut() -> bool:
            return cut.is_set()

        await worker.wait_until(redis_cut, "300 sends")

        # when Redis goes away for the workers after 300 sends, and every chain is lost
        # with it
        await asyncio.sleep(1.5)
        lost = [
            key
            for pattern in ("dramatiq:*", "campaign:sweep:*", "campaign:active:*")
            for key in client.scan_iter(pattern)
        ]
        if lost:
            client.delete(*lost)
        logged_before = len(worker.output())
        proxy.restore()
        await worker.completed(session, campaign_id)
        worker.stop()
        client.close()

    # then recovery re-armed the campaign, which completed by itself: every contact sent
    # exactly once
    assert "re-armed 1 campaigns" in worker.output()[logged_before:]
    assert await status_counts(session, campaign_id) == {"sent": 1_500}
    assert len(fake.sends) == 1_500
    assert set(fake.sends.values()) == {1}
