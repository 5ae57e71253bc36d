"""Dispatch mutations over HTTP: transitions, typed errors, and what gets enqueued."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from schema.common.ids import global_id
from tests.conftest import GqlClient
from tests.fake_whatsapp import campaign_status, seed_campaign, status_counts

pytestmark = pytest.mark.asyncio

START = """
mutation Start($id: ID!) {
  startCampaign(id: $id) {
    __typename
    ... on StartCampaignSuccess { campaign { id status startedAt } }
    ... on InvalidStateError { message entity id state }
    ... on NotFoundError { message entity id }
  }
}
"""
PAUSE = """
mutation Pause($id: ID!) {
  pauseCampaign(id: $id) {
    __typename
    ... on PauseCampaignSuccess { campaign { status } }
    ... on InvalidStateError { state }
  }
}
"""
RESUME = """
mutation Resume($id: ID!) {
  resumeCampaign(id: $id) {
    __typename
    ... on ResumeCampaignSuccess { campaign { status } }
    ... on InvalidStateError { state }
  }
}
"""
CANCEL = """
mutation Cancel($id: ID!) {
  cancelCampaign(id: $id) {
    __typename
    ... on CancelCampaignSuccess { campaign { status } }
    ... on InvalidStateError { state }
  }
}
"""
SCHEDULE = """
mutation Schedule($id: ID!, $at: DateTime!) {
  scheduleCampaign(id: $id, at: $at) {
    __typename
    ... on ScheduleCampaignSuccess { campaign { status scheduledAt } }
    ... on InvalidInputError { field message }
    ... on InvalidStateError { state }
  }
}
"""
RETRY = """
mutation Retry($id: ID!) {
  retryFailedMessages(id: $id) {
    __typename
    ... on RetryFailedMessagesSuccess { retried campaign { status } }
    ... on InvalidStateError { state }
  }
}
"""
RETRY_MARKETING = """
mutation Retry($id: ID!, $all: Boolean!) {
  retryFailedMessages(id: $id, includeMarketingLimited: $all) {
    ... on RetryFailedMessagesSuccess { retried marketingLimited }
  }
}
"""
PAUSE_REASON = """
query Reason($id: ID!) {
  campaign(id: $id) { status pauseReason { code errorCode message } }
  campaigns(first: 5) { nodes { id pauseReason { code errorCode } } }
}
"""
RESUME_REASON = """
mutation Resume($id: ID!) {
  resumeCampaign(id: $id) {
    ... on ResumeCampaignSuccess { campaign { status pauseReason { code } } }
  }
}
"""
VERIFY = """
mutation Verify($ids: [ID!]) {
  verifyContacts(contactIds: $ids) {
    __typename
    ... on VerifyContactsSuccess { queued }
    ... on NotFoundError { entity id }
  }
}
"""


def enqueued(settings: Settings) -> list[tuple[str, list[Any], bool]]:
    """(actor, args, delayed) of every message waiting in the broker's Redis queues."""
    client = redis.Redis.from_url(str(settings.redis_url))
    found = []
    for queue, delayed in (("default", False), ("default.DQ", True)):
        for raw in client.hvals(f"dramatiq:{queue}.msgs"):
            message = orjson.loads(raw)
            found.append((message["actor_name"], message["args"], delayed))
    return sorted(found)


async def test_start_campaign_enqueues_materialize_and_leaves_the_work_to_workers(
    gql: GqlClient, session: AsyncSession, settings: Settings
) -> None:
    # given a campaign targeting 2,000 contacts
    campaign_id = await seed_campaign(session, 2_000)
    await gql.ok("{ version }")  # warm the connection

    # when
    result = await gql(START, {"id": str(campaign_id)})

    # then
    assert result.errors is None
    payload = result.data["startCampaign"]
    assert payload["__typename"] == "StartCampaignSuccess"
    assert payload["campaign"]["status"] == "SENDING"
    assert payload["campaign"]["startedAt"] is not None
    assert enqueued(settings) == [("campaign.materialize", [campaign_id], False)]
    assert await status_counts(session, campaign_id) == {}  # the work is left to workers


async def test_concurrent_double_start_one_wins(
    gql: GqlClient, session: AsyncSession, settings: Settings
) -> None:
    # given
    campaign_id = await seed_campaign(session, 10)

    # when
    results = await asyncio.gather(*(gql(START, {"id": str(campaign_id)}) for _ in range(2)))

    # then
    kinds = sorted(r.data["startCampaign"]["__typename"] for r in results)
    assert kinds == ["InvalidStateError", "StartCampaignSuccess"]
    error = next(r.data["startCampaign"] for r in results if "state" in r.data["startCampaign"])
    assert error == {
        "__typename": "InvalidStateError",
        "message": "cannot start a sending campaign",
        "entity": "Campaign",
        "id": global_id("Campaign", campaign_id),
        "state": "SENDING",
    }
    assert enqueued(settings) == [("campaign.materialize", [campaign_id], False)]


async def test_start_unknown_campaign_is_not_found(gql: GqlClient, settings: Settings) -> None:
    result = await gql(START, {"id": "999"})
    assert result.data["startCampaign"] == {
        "__typename": "NotFoundError",
        "message": "Campaign 999 does not exist",
        "entity": "Campaign",
        "id": global_id("Campaign", 999),
    }
    assert enqueued(settings) == []


async def test_pause_resume_cancel_transitions(
    gql: GqlClient, session: AsyncSession, settings: Settings
) -> None:
    # given a draft campaign
    campaign_id = await seed_campaign(session, 3)
    variables = {"id": str(campaign_id)}

    # then pausing or resuming a draft is refused
    assert (await gql.ok(PAUSE, variables))["pauseCampaign"] == {
        "__typename": "InvalidStateError",
        "state": "DRAFT",
    }
    assert (await gql.ok(RESUME, variables))["resumeCampaign"]["state"] == "DRAFT"

    # when started, paused, resumed, cancelled
    await gql.ok(START, variables)
    paused = (await gql.ok(PAUSE, variables))["pauseCampaign"]
    resumed = (await gql.ok(RESUME, variables))["resumeCampaign"]
    await session.execute(
        text("INSERT INTO messages (campaign_id, contact_id) SELECT :c, id FROM contacts"),
        {"c": campaign_id},
    )
    await session.commit()
    cancelled = (await gql.ok(CANCEL, variables))["cancelCampaign"]
    again = (await gql.ok(CANCEL, variables))["cancelCampaign"]

    # then
    assert paused["campaign"]["status"] == "PAUSED"
    assert resumed["campaign"]["status"] == "SENDING"
    assert cancelled["campaign"]["status"] == "CANCELLED"
    assert again == {"__typename": "InvalidStateError", "state": "CANCELLED"}
    assert await status_counts(session, campaign_id) == {"failed": 3}
    assert [name for name, _, _ in enqueued(settings)] == ["campaign.materialize"] * 2


async def test_schedule_campaign(gql: GqlClient, session: AsyncSession, settings: Settings) -> None:
    # given
    campaign_id = await seed_campaign(session, 3)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    # when
    refused = (await gql.ok(SCHEDULE, {"id": str(campaign_id), "at": past}))["scheduleCampaign"]
    accepted = (await gql.ok(SCHEDULE, {"id": str(campaign_id), "at": future}))["scheduleCampaign"]

    # then
    assert refused == {
        "__typename": "InvalidInputError",
        "field": "at",
        "message": "the time must be in the future",
    }
    assert accepted["campaign"]["status"] == "SCHEDULED"
    assert enqueued(settings) == [("campaign.start_scheduled", [campaign_id], True)]
    assert await campaign_status(session, campaign_id) == "scheduled"


async def test_retry_failed_messages_requeues_all_but_undeliverable(
    gql: GqlClient, session: AsyncSession, settings: Settings
) -> None:
    # given a completed campaign with 2 interrupted messages, one to a number now invalid
    campaign_id = await seed_campaign(session, 4)
    await session.execute(
        text(
            "INSERT INTO messages (campaign_id, contact_id, status, error) "
            "SELECT :c, id, CASE WHEN id <= 2 THEN 'failed' ELSE 'sent' END, "
            "CASE WHEN id <= 2 THEN 'interrupted' END FROM contacts"
        ),
        {"c": campaign_id},
    )
    await session.execute(text("UPDATE contacts SET whatsapp_status = 'invalid' WHERE id = 1"))
    await session.execute(
        text("UPDATE campaigns SET status = 'completed', completed_at = now() WHERE id = :c"),
        {"c": campaign_id},
    )
    await session.commit()

    # when
    result = (await gql.ok(RETRY, {"id": str(campaign_id)}))["retryFailedMessages"]

    # then
    assert result == {
        "__typename": "RetryFailedMessagesSuccess",
        "retried": 1,
        "campaign": {"status": "SENDING"},
    }
    assert await status_counts(session, campaign_id) == {"failed": 1, "pending": 1, "sent": 2}
    assert enqueued(settings) == [("campaign.materialize", [campaign_id], False)]


async def test_retry_refused_for_a_draft(gql: GqlClient, session: AsyncSession) -> None:
    campaign_id = await seed_campaign(session, 1)
    result = (await gql.ok(RETRY, {"id": str(campaign_id)}))["retryFailedMessages"]
    assert result == {"__typename": "InvalidStateError", "state": "DRAFT"}


async def test_verify_contacts(gql: GqlClient, session: AsyncSession, settings: Settings) -> None:
    # given
    await seed_campaign(session, 3)

    # when
    missing = (await gql.ok(VERIFY, {"ids": ["1", "77"]}))["verifyContacts"]
    everyone = (await gql.ok(VERIFY, {"ids": None}))["verifyContacts"]

    # then
    assert missing == {
        "__typename": "NotFoundError",
        "entity": "Contact",
        "id": global_id("Contact", 77),
    }
    assert everyone == {"__typename": "VerifyContactsSuccess", "queued": 3}
    assert enqueued(settings) == [("contacts.verify", [[1, 2, 3]], False)]


async def test_retry_leaves_messages_at_the_marketing_limit_alone_for_24_hours_unless_asked(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given a completed campaign: 2 messages refused at the per-user marketing limit an
    # hour ago, 1 a day and a half ago, 1 failed otherwise
    campaign_id = await seed_campaign(session, 4)
    await session.execute(
        text(
            "INSERT INTO messages (campaign_id, contact_id, status, error, error_code, failed_at)"
            " SELECT :c, id, 'failed', CASE WHEN id < 4 THEN '131049: limit' ELSE 'other' END,"
            " CASE WHEN id < 4 THEN 131049 END,"
            " now() - CASE WHEN id = 3 THEN interval '36 hours' ELSE interval '1 hour' END"
            " FROM contacts"
        ),
        {"c": campaign_id},
    )
    await session.execute(
        text("UPDATE campaigns SET status = 'completed', completed_at = now() WHERE id = :c"),
        {"c": campaign_id},
    )
    await session.commit()

    # when retried, then retried again asking for them
    first = await gql.ok(RETRY_MARKETING, {"id": str(campaign_id), "all": False})
    kept = await session.execute(
        text("SELECT contact_id, error_code FROM messages WHERE status = 'failed' ORDER BY 1")
    )
    kept_rows = [tuple(row) for row in kept]
    await session.commit()
    second = await gql.ok(RETRY_MARKETING, {"id": str(campaign_id), "all": True})

    # then the recent ones kept their code the first time, and went back when asked
    assert first["retryFailedMessages"] == {"retried": 2, "marketingLimited": 2}
    assert kept_rows == [(1, 131049), (2, 131049)]
    assert second["retryFailedMessages"] == {"retried": 2, "marketingLimited": 0}
    assert await status_counts(session, campaign_id) == {"pending": 4}


async def test_a_pause_reason_shows_until_the_campaign_is_resumed(
    gql: GqlClient, session: AsyncSession, settings: Settings
) -> None:
    # given a campaign Herald paused over a paused template, with its halt mark
    campaign_id = await seed_campaign(session, 1)
    await session.execute(
        text(
            "UPDATE campaigns SET status = 'paused', pause_code = 'template_paused',"
            " pause_error_code = 132015, pause_message = 'Resume later.' WHERE id = :c"
        ),
        {"c": campaign_id},
    )
    await session.commit()
    client = redis.Redis.from_url(str(settings.redis_url))
    client.set(f"campaign:halt:{campaign_id}", "template_paused")

    # when
    shown = await gql.ok(PAUSE_REASON, {"id": str(campaign_id)})
    resumed = await gql.ok(RESUME_REASON, {"id": str(campaign_id)})
    after = await gql.ok(PAUSE_REASON, {"id": str(campaign_id)})

    # then
    reason = {"code": "TEMPLATE_PAUSED", "errorCode": 132015, "message": "Resume later."}
    assert shown["campaign"] == {"status": "PAUSED", "pauseReason": reason}
    assert shown["campaigns"]["nodes"] == [
        {
            "id": global_id("Campaign", campaign_id),
            "pauseReason": {"code": "TEMPLATE_PAUSED", "errorCode": 132015},
        }
    ]
    assert resumed["resumeCampaign"]["campaign"] == {"status": "SENDING", "pauseReason": None}
    assert after["campaign"] == {"status": "SENDING", "pauseReason": None}
    assert not client.exists(f"campaign:halt:{campaign_id}")
