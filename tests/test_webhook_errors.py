"""Cloud API errors arriving in status webhooks (`statuses[].errors[].code`), over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.halts import halt_key
from app.config import Settings
from app.senders.service import DEFAULT_NUMBER_ID
from app.whatsapp.pacing import Pacer
from tests.test_dispatch_mutations import enqueued
from tests.test_webhooks import (
    given_messages,
    post,
    secrets,  # noqa: F401 (autouse: the app secret the deliveries are signed with)
    status,
)

pytestmark = pytest.mark.asyncio


def failed(wamid: str, message_id: int, code: int) -> dict[str, Any]:
    error = {"code": code, "title": "Some title", "error_data": {"details": "Some details"}}
    return status(wamid, "failed", message_id, errors=[error])


async def given_sent(session: AsyncSession, campaign_status: str = "sending") -> tuple[int, int]:
    """(campaign id, message id) of one message `sent` as wamid.0."""
    campaign_id = await given_messages(session, "sent")
    await session.execute(
        text("UPDATE campaigns SET status = :s WHERE id = :c"),
        {"s": campaign_status, "c": campaign_id},
    )
    await session.commit()
    message_id = (await session.execute(text("SELECT id FROM messages"))).scalar_one()
    return campaign_id, int(message_id)


async def the_message(session: AsyncSession) -> Any:
    row = (
        await session.execute(
            text(
                "SELECT status, provider_message_id, error, error_code, deferrals,"
                " extract(epoch FROM not_before - clock_timestamp()) AS wait FROM messages"
            )
        )
    ).one()
    await session.commit()
    return row


async def test_a_retry_later_status_puts_the_message_back_and_wakes_a_send_chain(
    http: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given a sent message of a sending campaign
    campaign_id, message_id = await given_sent(session)

    # when the Cloud API reports it failed with the pair rate limit
    code = await post(http, failed("wamid.0", message_id, 131056))

    # then it waits 6 s to go out again, without the failed send's id, and a send chain
    # of the campaign sleeps in the broker until then
    assert code == 200
    row = await the_message(session)
    assert (row.status, row.provider_message_id, row.error, row.deferrals) == (
        "pending",
        None,
        None,
        1,
    )
    assert 5 < row.wait <= 6
    assert enqueued(settings) == [("campaign.send_batch", [campaign_id], True)]


async def test_a_marketing_limit_status_fails_the_message_with_its_code(
    http: httpx.AsyncClient, session: AsyncSession
) -> None:
    # given
    _, message_id = await given_sent(session)

    # when
    code = await post(http, failed("wamid.0", message_id, 131049))

    # then
    assert code == 200
    row = await the_message(session)
    assert (row.status, row.error, row.error_code) == ("failed", "131049: Some title", 131049)


async def test_a_campaign_stopping_status_pauses_the_campaign_and_puts_the_message_back(
    http: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given
    campaign_id, message_id = await given_sent(session)

    # when the Cloud API reports the template paused
    code = await post(http, failed("wamid.0", message_id, 132015))

    # then the campaign is paused with the reason; the message waits for the resume
    assert code == 200
    row = await the_message(session)
    assert (row.status, row.provider_message_id, row.error) == ("pending", None, None)
    campaign = (
        await session.execute(
            text("SELECT status, pause_code, pause_error_code FROM campaigns WHERE id = :c"),
            {"c": campaign_id},
        )
    ).one()
    await session.commit()
    assert tuple(campaign) == ("paused", "template_paused", 132015)
    assert redis.Redis.from_url(str(settings.redis_url)).exists(halt_key(campaign_id))


async def test_a_retry_later_status_of_a_completed_campaign_fails_the_message(
    http: httpx.AsyncClient, session: AsyncSession
) -> None:
    # given a campaign that completed before the webhook came
    _, message_id = await given_sent(session, "completed")

    # when
    code = await post(http, failed("wamid.0", message_id, 131000))

    # then nothing sends it again: it fails with the code
    assert code == 200
    row = await the_message(session)
    assert (row.status, row.error_code) == ("failed", 131000)


async def test_a_slow_down_status_halves_the_send_rate(
    http: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    # given
    _, message_id = await given_sent(session)
    client = redis.asyncio.Redis.from_url(str(settings.redis_url))
    pacer = Pacer(
        client,
        settings.whatsapp_rate_per_second,
        settings.whatsapp_rate_recovery_s,
        settings.whatsapp_phone_number_id or DEFAULT_NUMBER_ID,
    )

    # when
    code = await post(http, failed("wamid.0", message_id, 130429))

    # then
    assert code == 200
    assert (await the_message(session)).status == "pending"
    assert await pacer.current() <= settings.whatsapp_rate_per_second // 2 + 1
    await client.aclose()
