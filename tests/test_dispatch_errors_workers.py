"""Cloud API error classes met by real Dramatiq workers, against the fake Cloud API."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest
import redis.asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.whatsapp.pacing import Pacer
from tests.conftest import GqlClient, Server, StartWorker
from tests.fake_whatsapp import (
    PHONE_NUMBER_ID,
    WAIT_S,
    FakeWhatsApp,
    campaign_status,
    phone,
    seed_campaign,
    status_counts,
)
from tests.test_dispatch_mutations import PAUSE_REASON, RESUME_REASON, RETRY_MARKETING
from tests.test_dispatch_workers import START
from tests.test_templates_lifecycle import RESUME, template_event
from tests.test_webhooks import post
from tests.ws_client import gql_socket

pytestmark = pytest.mark.asyncio

PROGRESS = """
subscription Progress($id: ID!) {
  campaignProgress(id: $id) { status pauseReason { code errorCode } }
}
"""


async def test_slow_down_bursts_reach_every_contact_once_and_the_rate_recovers(
    gql: GqlClient,
    session: AsyncSession,
    settings: Settings,
    fake: FakeWhatsApp,
    start_worker: StartWorker,
) -> None:
    # given 2,000 contacts sent at 200/s (a halved rate regains 50/s each second), and a
    # provider that answers everything with 130429 for 2 s after 300, 600 and 900 sends
    campaign_id = await seed_campaign(session, 2_000)
    bursts: list[float] = []

    def burst(total: int) -> None:
        if total in (300, 600, 900):
            fake.start_burst(130429, 2.0)
            bursts.append(time.time())

    fake.on_send = burst
    worker = await start_worker(
        whatsapp_rate_per_second=200, whatsapp_rate_recovery_s=4, dispatch_batch_size=100
    )
    client = redis.asyncio.Redis.from_url(str(settings.redis_url))
    pacer = Pacer(client, 200, 4, PHONE_NUMBER_ID)
    rates: list[tuple[float, int]] = []  # the workers' shared rate, every 50 ms

    async def watch() -> None:
        while True:
            rates.append((time.time(), await pacer.current()))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())

    # when
    await gql.ok(START, {"id": str(campaign_id)})
    await worker.completed(session, campaign_id)
    worker.stop()
    watcher.cancel()

    # then every contact was reached exactly once, nothing failed
    assert len(bursts) == 3
    assert len(fake.sends) == 2_000
    assert set(fake.sends.values()) == {1}
    assert await status_counts(session, campaign_id) == {"sent": 2_000}
    # during each burst the workers slowed down: their shared rate was halved, and a halved
    # rate regains 50/s (counting the requests the fake answered per second measured the fake
    # as much: on a busy machine it answers them late, in heaps)
    for start in bursts:
        during = [rate for at, rate in rates if start <= at <= start + 2.0]
        assert during, rates
        assert min(during) < 150, during
    # after the last one the rate came back by itself: full seconds at 200 again
    accepted = Counter(int(r.at) for r in fake.answered(0))
    after = [accepted[s] for s in range(int(bursts[-1] + 2.0) + 1, max(accepted))]
    assert len(after) >= 2, after
    assert max(after) >= 190, after
    assert await pacer.current() == 200
    await client.aclose()


async def test_pair_rate_limit_sends_each_message_again_after_6_s_once(
    gql: GqlClient, session: AsyncSession, fake: FakeWhatsApp, start_worker: StartWorker
) -> None:
    # given 300 contacts, 10 of whom the provider answers 131056 once
    campaign_id = await seed_campaign(session, 300)
    busy = [phone(i).lstrip("+") for i in range(50, 60)]
    fake.errors.update({number: [131056] for number in busy})
    worker = await start_worker(whatsapp_rate_per_second=100_000)

    # when
    await gql.ok(START, {"id": str(campaign_id)})
    await worker.completed(session, campaign_id)
    worker.stop()

    # then each of them went out again once, 6 s later; every contact was reached once
    for number in busy:
        tries = [r for r in fake.requests if r.to == number]
        assert [r.code for r in tries] == [131056, 0]
        assert tries[1].at - tries[0].at >= 5.9
    assert len(fake.sends) == 300
    assert set(fake.sends.values()) == {1}
    assert await status_counts(session, campaign_id) == {"sent": 300}


async def test_a_template_paused_mid_campaign_pauses_it_within_a_batch_and_resume_finishes(
    gql: GqlClient,
    http: httpx.AsyncClient,
    server: Server,
    admin_key: str,
    settings: Settings,
    session: AsyncSession,
    fake: FakeWhatsApp,
    start_worker: StartWorker,
) -> None:
    # given 2,000 contacts in batches of 100, and a template WhatsApp pauses after 600 sends
    campaign_id = await seed_campaign(session, 2_000)

    def pause_template(total: int) -> None:
        if total == 600:
            fake.templates["spring_sale"] = 132015

    fake.on_send = pause_template
    worker = await start_worker(
        whatsapp_rate_per_second=500, dispatch_batch_size=100, dispatch_send_concurrency=16
    )
    async with gql_socket(server.url) as socket:
        assert (await socket.init(admin_key))["type"] == "connection_ack"
        await socket.subscribe("p", PROGRESS, {"id": str(campaign_id)})
        events: list[dict[str, Any]] = []

        async def until_paused() -> None:
            async for event in socket.events("p"):
                events.append(event["payload"]["data"]["campaignProgress"])
                if events[-1]["status"] == "PAUSED":
                    return

        listening = asyncio.create_task(until_paused())

        # when
        await gql.ok(START, {"id": str(campaign_id)})

        async def paused() -> bool:
            return await campaign_status(session, campaign_id) == "paused"

        await worker.wait_until(paused, "the campaign to pause")
        seen_paused = time.time()
        await asyncio.wait_for(listening, WAIT_S)
    await asyncio.sleep(1.0)

    # then the refusals fit in one batch and none came after the pause; nothing failed,
    # the rest waits; the reason says what to do, live, in the API, /metrics and the log
    refused = fake.answered(132015, "spring_sale")
    assert 0 < len(refused) <= 100
    assert max(r.at for r in refused) <= seen_paused
    sent = len(fake.sends)
    assert await status_counts(session, campaign_id) == {"sent": sent, "pending": 2_000 - sent}
    reason = (await gql.ok(PAUSE_REASON, {"id": str(campaign_id)}))["campaign"]["pauseReason"]
    assert (reason["code"], reason["errorCode"]) == ("TEMPLATE_PAUSED", 132015)
    assert "resume once the pause has ended" in reason["message"]
    assert events[-1]["pauseReason"] == {"code": "TEMPLATE_PAUSED", "errorCode": 132015}
    metrics = (await http.get("/metrics")).text
    assert 'herald_campaign_pauses_total{code="TEMPLATE_PAUSED"} 1.0' in metrics
    assert f"campaign {campaign_id} paused: TEMPLATE_PAUSED (Cloud API error 132015)" in (
        worker.output()
    )

    # when resumed while the template is still paused (the error marked it so)
    refused = await gql.ok(RESUME, {"id": str(campaign_id)})

    # then it stays paused
    assert refused["resumeCampaign"]["__typename"] == "TemplateNotApprovedError"
    assert refused["resumeCampaign"]["status"] == "PAUSED"
    assert await campaign_status(session, campaign_id) == "paused"

    # when WhatsApp approves the template again (its status webhook) and it is resumed
    fake.templates.clear()
    approved = template_event("APPROVED", language="fr")
    assert await post(http, approved, secret=settings.whatsapp_app_secret) == 200
    resumed = await gql.ok(RESUME_REASON, {"id": str(campaign_id)})
    await worker.completed(session, campaign_id)
    worker.stop()

    # then the reason is gone and every contact was reached exactly once
    assert resumed["resumeCampaign"]["campaign"] == {"status": "SENDING", "pauseReason": None}
    assert len(fake.sends) == 2_000
    assert set(fake.sends.values()) == {1}
    assert await status_counts(session, campaign_id) == {"sent": 2_000}


async def test_a_template_paused_by_its_status_webhook_mid_campaign_sends_nothing_more(
    gql: GqlClient,
    http: httpx.AsyncClient,
    settings: Settings,
    session: AsyncSession,
    fake: FakeWhatsApp,
    start_worker: StartWorker,
) -> None:
    # given 2,000 contacts sent at 500/s by 4 lanes, waves of 16, to a provider that goes on
    # accepting the template (any send after the pause would get through)
    campaign_id = await seed_campaign(session, 2_000)
    worker = await start_worker(
        whatsapp_rate_per_second=500, dispatch_batch_size=100, dispatch_send_concurrency=16
    )
    await gql.ok(START, {"id": str(campaign_id)})

    async def under_way() -> bool:
        return len(fake.sends) >= 400

    await worker.wait_until(under_way, "400 sends")

    # when WhatsApp pauses the template, mid-campaign
    paused = template_event("PAUSED", language="fr", other_info={"title": "FIRST_PAUSE"})
    answer = await post(http, paused, secret=settings.whatsapp_app_secret)
    answered = time.time()
    await asyncio.sleep(1.5)
    settled = len(fake.sends)
    await asyncio.sleep(1.5)

    # then the campaign is paused with the reason; after the answer only waves already in
    # flight went out (one per lane at most), and nothing at all once they were back
    assert answer == 200
    assert await campaign_status(session, campaign_id) == "paused"
    late = [r for r in fake.answered(0) if r.at > answered]
    assert len(late) <= 4 * 16, len(late)
    assert len(fake.sends) == settled < 2_000
    assert set(fake.sends.values()) == {1}
    assert await status_counts(session, campaign_id) == {
        "sent": settled,
        "pending": 2_000 - settled,
    }
    reason = (await gql.ok(PAUSE_REASON, {"id": str(campaign_id)}))["campaign"]["pauseReason"]
    assert (reason["code"], reason["errorCode"]) == ("TEMPLATE_PAUSED", 132015)
    worker.stop()


async def test_messages_at_the_marketing_limit_are_not_retried_within_24_hours_unless_asked(
    gql: GqlClient,
    server: Server,
    settings: Settings,
    session: AsyncSession,
    fake: FakeWhatsApp,
    start_worker: StartWorker,
) -> None:
    # given 300 contacts, 50 of whom WhatsApp refuses at the per-user marketing limit,
    # reported in failed status webhooks after accepting the send
    campaign_id = await seed_campaign(session, 300)
    limited = [phone(i).lstrip("+") for i in range(100, 150)]
    fake.async_errors.update({number: 131049 for number in limited})
    fake.webhook_url = f"{server.url}/webhooks/whatsapp"
    fake.app_secret = settings.whatsapp_app_secret
    worker = await start_worker(whatsapp_rate_per_second=100_000)
    await gql.ok(START, {"id": str(campaign_id)})

    async def settled() -> bool:
        counts = await status_counts(session, campaign_id)
        done = await campaign_status(session, campaign_id) == "completed"
        return done and counts == {"sent": 250, "failed": 50}

    async def counts() -> dict[str, int]:
        return await status_counts(session, campaign_id)

    await worker.wait_until(settled, "250 sent and 50 failed", counts)

    # when failed messages are retried
    first = await gql.ok(RETRY_MARKETING, {"id": str(campaign_id), "all": False})
    await asyncio.sleep(1.0)

    # then none is re-sent: they keep their code
    assert first["retryFailedMessages"] == {"retried": 0, "marketingLimited": 50}
    kept = await session.execute(
        text("SELECT count(*) FROM messages WHERE status = 'failed' AND error_code = 131049")
    )
    assert kept.scalar_one() == 50
    await session.commit()
    assert sum(fake.sends.values()) == 300
    assert fake.webhooks[131049] == 50

    # when asked explicitly
    fake.async_errors.clear()
    second = await gql.ok(RETRY_MARKETING, {"id": str(campaign_id), "all": True})
    await worker.completed(session, campaign_id)
    worker.stop()

    # then they go out once more
    assert second["retryFailedMessages"] == {"retried": 50, "marketingLimited": 0}
    assert [fake.sends[number] for number in limited] == [2] * 50
    assert await status_counts(session, campaign_id) == {"sent": 300}
