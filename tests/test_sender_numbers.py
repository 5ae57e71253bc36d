"""Sender numbers: each with its own throughput, a campaign bound to one or sending through
the pool, and phone_number_quality_update taking a RED or FLAGGED number out of traffic."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns import tasks as campaign_tasks
from app.deps import Deps
from app.messages import tasks as message_tasks
from app.senders.service import SenderService
from schema.common.ids import global_id
from tests.conftest import GqlClient
from tests.fake_whatsapp import (
    PHONE_NUMBER_ID,
    FakeWhatsApp,
    campaign_status,
    quality_update,
    seed_campaign,
    status_counts,
)
from tests.test_dispatch import make_deps_fixture, set_status  # noqa: F401 (fixture)
from tests.test_messaging_limit import post, secrets  # noqa: F401 (fixture)

pytestmark = pytest.mark.asyncio

SECOND_ID = "2222222222"
SECOND_DISPLAY = "15550000002"

ADD = """
mutation ($input: AddSenderNumberInput!) {
  addSenderNumber(input: $input) {
    __typename
    ... on AddSenderNumberSuccess { senderNumber { id phoneNumberId throughput } }
    ... on InvalidInputError { field message }
  }
}
"""
BIND = """
mutation ($id: ID!, $number: ID) {
  setCampaignSenderNumber(id: $id, senderNumber: $number) {
    __typename
    ... on SetCampaignSenderNumberSuccess { campaign { senderNumber { phoneNumberId } } }
    ... on NotFoundError { entity id }
  }
}
"""
NUMBERS = """
query {
  senderNumbers {
    phoneNumberId displayNumber qualityRating status flaggedReason takesTraffic throughput
  }
}
"""
CAMPAIGN = """
query ($id: ID!) {
  campaign(id: $id) { status pauseReason { code errorCode message } senderNumber { id } }
}
"""

CAMPAIGNS = """
query {
  campaigns(first: 10) {
    nodes { name senderNumber { phoneNumberId } reach { pending reachableNow waitingUntil } }
  }
}
"""


async def add_second(gql: GqlClient, throughput: int = 40) -> str:
    variables = {
        "input": {
            "phoneNumberId": SECOND_ID,
            "displayNumber": "+" + SECOND_DISPLAY,
            "throughput": throughput,
        }
    }
    result = (await gql.ok(ADD, variables))["addSenderNumber"]
    assert result["__typename"] == "AddSenderNumberSuccess"
    return str(result["senderNumber"]["id"])


async def with_default_number(session: AsyncSession, deps: Deps) -> None:
    """The dispatch's default number joins the table (as at its first batch)."""
    await SenderService(session, deps.settings).numbers()
    await session.commit()


async def drain(deps: Deps, campaign_id: int) -> None:
    while await message_tasks.send_batch(deps, campaign_id):
        pass


async def test_add_sender_number_refuses_bad_input_with_a_typed_error(gql: GqlClient) -> None:
    # when
    variables = {"input": {"phoneNumberId": "12ab", "displayNumber": "155", "throughput": 80}}
    result = (await gql.ok(ADD, variables))["addSenderNumber"]

    # then nothing was added
    assert result["__typename"] == "InvalidInputError"
    assert result["field"] == "phoneNumberId"
    assert (await gql.ok(NUMBERS))["senderNumbers"] == []


async def test_a_flagged_number_pauses_the_campaigns_bound_to_it_with_a_reason(
    session: AsyncSession,
    make_deps: Any,
    fake: FakeWhatsApp,
    gql: GqlClient,
    http: httpx.AsyncClient,
) -> None:
    # given a campaign bound to a second number, sending through it
    deps = make_deps(dispatch_batch_size=10, whatsapp_display_number="15550000001")
    await with_default_number(session, deps)
    second = await add_second(gql)
    campaign_id = await seed_campaign(session, 30)
    bound = await gql.ok(BIND, {"id": str(campaign_id), "number": second})
    assert bound["setCampaignSenderNumber"]["campaign"]["senderNumber"] == {
        "phoneNumberId": SECOND_ID
    }
    await set_status(session, campaign_id, "sending")
    await campaign_tasks.materialize(deps, campaign_id)
    await message_tasks.send_batch(deps, campaign_id)
    assert {r.sender for r in fake.answered(0)} == {SECOND_ID}

    # when WhatsApp flags it
    assert await post(http, quality_update(SECOND_DISPLAY, "FLAGGED")) == 200

    # then the campaign is paused saying why, and nothing more goes out
    campaign = (await gql.ok(CAMPAIGN, {"id": str(campaign_id)}))["campaign"]
    assert campaign["status"] == "PAUSED"
    reason = campaign["pauseReason"]
    assert (reason["code"], reason["errorCode"]) == ("SENDER_NUMBER_UNAVAILABLE", 0)
    assert f"+{SECOND_DISPLAY}" in reason["message"]
    await drain(deps, campaign_id)
    assert await status_counts(session, campaign_id) == {"sent": 10, "pending": 20}
    numbers = {n["phoneNumberId"]: n for n in (await gql.ok(NUMBERS))["senderNumbers"]}
    assert numbers[SECOND_ID]["qualityRating"] == "RED"
    assert numbers[SECOND_ID]["status"] == "FLAGGED"
    assert numbers[SECOND_ID]["takesTraffic"] is False
    assert f"+{SECOND_DISPLAY}" in numbers[SECOND_ID]["flaggedReason"]
    assert numbers[PHONE_NUMBER_ID]["takesTraffic"] is True

    # and once unflagged it takes traffic again
    assert await post(http, quality_update(SECOND_DISPLAY, "UNFLAGGED")) == 200
    numbers = {n["phoneNumberId"]: n for n in (await gql.ok(NUMBERS))["senderNumbers"]}
    assert numbers[SECOND_ID]["takesTraffic"] is True
    assert numbers[SECOND_ID]["flaggedReason"] is None


async def test_the_pool_skips_a_red_number_and_the_campaign_completes(
    session: AsyncSession,
    make_deps: Any,
    fake: FakeWhatsApp,
    gql: GqlClient,
    http: httpx.AsyncClient,
) -> None:
    # given two numbers in the pool, the second rated RED
    deps = make_deps(dispatch_batch_size=5)
    await with_default_number(session, deps)
    await add_second(gql, throughput=1_000)
    payload = quality_update(SECOND_DISPLAY, "DOWNGRADE", quality_rating="RED")
    assert await post(http, payload) == 200
    campaign_id = await seed_campaign(session, 30)
    await set_status(session, campaign_id, "sending")
    await campaign_tasks.materialize(deps, campaign_id)

    # when
    await drain(deps, campaign_id)

    # then every message went through the other number
    assert await status_counts(session, campaign_id) == {"sent": 30}
    assert await campaign_status(session, campaign_id) == "completed"
    assert {r.sender for r in fake.answered(0)} == {PHONE_NUMBER_ID}


async def test_a_campaign_bound_to_a_number_taking_no_traffic_pauses_before_sending(
    session: AsyncSession,
    make_deps: Any,
    fake: FakeWhatsApp,
    gql: GqlClient,
    http: httpx.AsyncClient,
) -> None:
    # given a number already flagged, and a campaign bound to it started afterwards
    deps = make_deps()
    second = await add_second(gql)
    assert await post(http, quality_update(SECOND_DISPLAY, "FLAGGED")) == 200
    campaign_id = await seed_campaign(session, 5)
    await gql.ok(BIND, {"id": str(campaign_id), "number": second})
    await set_status(session, campaign_id, "sending")
    await campaign_tasks.materialize(deps, campaign_id)

    # when
    await message_tasks.send_batch(deps, campaign_id)

    # then it is paused with the number's reason, and nothing went out
    campaign = (await gql.ok(CAMPAIGN, {"id": str(campaign_id)}))["campaign"]
    assert campaign["status"] == "PAUSED"
    assert campaign["pauseReason"]["code"] == "SENDER_NUMBER_UNAVAILABLE"
    assert sum(fake.attempts.values()) == 0
    assert await status_counts(session, campaign_id) == {"pending": 5}


async def test_binding_to_an_unknown_number_is_a_typed_error(
    session: AsyncSession, gql: GqlClient
) -> None:
    # given
    campaign_id = await seed_campaign(session, 1)

    # when
    result = (await gql.ok(BIND, {"id": str(campaign_id), "number": "999"}))[
        "setCampaignSenderNumber"
    ]

    # then
    assert result == {
        "__typename": "NotFoundError",
        "entity": "SenderNumber",
        "id": global_id("SenderNumber", 999),
    }
    campaign = (await gql.ok(CAMPAIGN, {"id": str(campaign_id)}))["campaign"]
    assert campaign["senderNumber"] is None


async def test_a_campaign_list_shows_each_ones_number_and_reach(
    session: AsyncSession, gql: GqlClient
) -> None:
    # given a campaign bound to a number, its 3 messages pending
    second = await add_second(gql)
    campaign_id = await seed_campaign(session, 3)
    await gql.ok(BIND, {"id": str(campaign_id), "number": second})
    await set_status(session, campaign_id, "sending")
    all_now = {"pending": 3, "reachableNow": 3, "waitingUntil": None}

    # when
    await session.execute(
        text("INSERT INTO messages (campaign_id, contact_id) SELECT :c, id FROM contacts"),
        {"c": campaign_id},
    )
    await session.commit()
    nodes = (await gql.ok(CAMPAIGNS))["campaigns"]["nodes"]

    # then
    assert nodes == [
        {"name": "Spring", "senderNumber": {"phoneNumberId": SECOND_ID}, "reach": all_now}
    ]
