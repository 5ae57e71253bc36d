"""Lists never show a state older than the request, worker step or webhook that changed it.

Each test reads `campaigns` and `dashboard` first (the dashboard's cached value then holds
the old status), makes one lifecycle transition, and reads them again: the new status must
show at once, not after the dashboard's TTL. `campaigns` is read from PostgreSQL each time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns import dispatch as campaign_dispatch
from app.campaigns import tasks as campaign_tasks
from app.config import Settings
from app.contacts import tasks as contact_tasks
from app.whatsapp.providers import sign
from tests.conftest import GqlClient
from tests.fake_whatsapp import (
    FakeWhatsApp,
    phone,
    seed_campaign,
)
from tests.test_dispatch import make_deps_fixture  # noqa: F401 (the `make_deps` fixture)

pytestmark = pytest.mark.asyncio

LISTS = """
{
  campaigns(first: 10) { nodes { databaseId status } }
  dashboard { recentCampaigns { databaseId status } campaignsByStatus { status count } }
}
"""
MUTATIONS = {
    "start": "mutation($id: ID!) { startCampaign(id: $id) { __typename } }",
    "pause": "mutation($id: ID!) { pauseCampaign(id: $id) { __typename } }",
    "resume": "mutation($id: ID!) { resumeCampaign(id: $id) { __typename } }",
    "cancel": "mutation($id: ID!) { cancelCampaign(id: $id) { __typename } }",
    "retry": "mutation($id: ID!) { retryFailedMessages(id: $id) { __typename } }",
    "schedule": "mutation($id: ID!, $at: DateTime!) { scheduleCampaign(id: $id, at: $at) "
    "{ __typename } }",
}
SUCCESS = {
    "start": "StartCampaignSuccess",
    "pause": "PauseCampaignSuccess",
    "resume": "ResumeCampaignSuccess",
    "cancel": "CancelCampaignSuccess",
    "retry": "RetryFailedMessagesSuccess",
    "schedule": "ScheduleCampaignSuccess",
}
FIELDS = {
    "start": "startCampaign",
    "pause": "pauseCampaign",
    "resume": "resumeCampaign",
    "cancel": "cancelCampaign",
    "retry": "retryFailedMessages",
    "schedule": "scheduleCampaign",
}


async def lists(gql: GqlClient, campaign_id: int) -> tuple[str, str, list[str]]:
    """The campaign's status in `campaigns`, in `recentCampaigns`, and the non-zero counts."""
    data = await gql.ok(LISTS)
    (listed,) = [n["status"] for n in data["campaigns"]["nodes"] if n["databaseId"] == campaign_id]
    dashboard = data["dashboard"]
    (recent,) = [
        c["status"] for c in dashboard["recentCampaigns"] if c["databaseId"] == campaign_id
    ]
    counts = [c["status"] for c in dashboard["campaignsByStatus"] if c["count"]]
    return listed, recent, counts


async def given_campaign(session: AsyncSession, status: str, **columns: Any) -> int:
    """A campaign over 3 contacts in `status`; `failed`: one failed and two sent messages."""
    campaign_id = await seed_campaign(session, 3)
    sets = ", ".join(f"{name} = :{name}" for name in ("status", *columns))
    await session.execute(
        text(f"UPDATE campaigns SET {sets} WHERE id = :c"),
        {"c": campaign_id, "status": status, **columns},
    )
    await session.execute(
        text(
            "INSERT INTO messages (campaign_id, contact_id, status)"
            " SELECT :c, id, CASE WHEN id = 1 THEN 'failed' ELSE 'sent' END FROM contacts"
        ),
        {"c": campaign_id},
    )
    await session.commit()
    return campaign_id


@pytest.mark.parametrize(
    ("action", "before", "after"),
    [
        ("start", "draft", "SENDING"),
        ("schedule", "draft", "SCHEDULED"),
        ("pause", "sending", "PAUSED"),
        ("resume", "paused", "SENDING"),
        ("cancel", "sending", "CANCELLED"),
        ("retry", "completed", "SENDING"),
    ],
)
async def test_lifecycle_mutation_refreshes_campaign_lists(
    gql: GqlClient, session: AsyncSession, action: str, before: str, after: str
) -> None:
    # given lists read (and cached) while the campaign is `before`
    campaign_id = await given_campaign(session, before)
    cached = await lists(gql, campaign_id)
    variables: dict[str, Any] = {"id": str(campaign_id)}
    if action == "schedule":
        variables["at"] = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    # when
    result = await gql.ok(MUTATIONS[action], variables)

    # then
    assert result[FIELDS[action]]["__typename"] == SUCCESS[action]
    assert cached == (before.upper(), before.upper(), [before.upper()])
    assert await lists(gql, campaign_id) == (after, after, [after])


async def test_worker_starting_a_scheduled_campaign_refreshes_lists(
    gql: GqlClient, session: AsyncSession, make_deps: Any
) -> None:
    # given a scheduled campaign that is due, its lists cached
    due = datetime.now(UTC) - timedelta(seconds=1)
    campaign_id = await given_campaign(session, "scheduled", scheduled_at=due)
    cached = await lists(gql, campaign_id)

    # when the worker's timer fires
    started = await campaign_tasks.start_scheduled(make_deps(), campaign_id)

    # then
    assert started is True
    assert cached == ("SCHEDULED", "SCHEDULED", ["SCHEDULED"])
    assert await lists(gql, campaign_id) == ("SENDING", "SENDING", ["SENDING"])


async def test_worker_completing_a_campaign_refreshes_lists(
    gql: GqlClient, session: AsyncSession, make_deps: Any
) -> None:
    # given a sending campaign with nothing left to send, its lists cached
    campaign_id = await given_campaign(session, "sending")
    cached = await lists(gql, campaign_id)

    # when the worker looks for the end
    await campaign_dispatch.finish(make_deps(), campaign_id)

    # then
    assert cached == ("SENDING", "SENDING", ["SENDING"])
    assert await lists(gql, campaign_id) == ("COMPLETED", "COMPLETED", ["COMPLETED"])


async def test_the_dashboard_is_cached_between_transitions(
    gql: GqlClient, session: AsyncSession
) -> None:
    """The tests above would pass without a cache: here a write behind Herald's back stays
    unseen by the cached dashboard, while the campaign list, read from PostgreSQL, sees it."""
    # given
    campaign_id = await given_campaign(session, "draft")
    assert await lists(gql, campaign_id) == ("DRAFT", "DRAFT", ["DRAFT"])

    # when the status changes without going through Herald
    await session.execute(
        text("UPDATE campaigns SET status = 'paused' WHERE id = :c"), {"c": campaign_id}
    )
    await session.commit()

    # then the dashboard still answers from its cache (until its TTL); the list is fresh
    assert await lists(gql, campaign_id) == ("PAUSED", "DRAFT", ["DRAFT"])


CONTACTS = """
{
  contacts(first: 10) { nodes { phone whatsappStatus optedOutAt } }
  dashboard { optedOutContactCount }
}
"""


async def test_opt_out_webhook_refreshes_contact_lists(
    gql: GqlClient,
    session: AsyncSession,
    http: httpx.AsyncClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a contact who got a message, the contact list cached
    monkeypatch.setattr(settings, "whatsapp_app_secret", "app-secret")
    await given_campaign(session, "completed")
    cached = await gql.ok(CONTACTS)
    body = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "1",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messages": [
                                    {
                                        "from": phone(0).lstrip("+"),
                                        "id": "in.1",
                                        "timestamp": "1764000000",
                                        "type": "text",
                                        "text": {"body": "STOP"},
                                    }
                                ]
                            },
                        }
                    ],
                }
            ],
        }
    )

    # when the contact answers STOP
    response = await http.post(
        "/webhooks/whatsapp",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign("app-secret", body),
        },
    )

    # then
    assert response.status_code == 200
    assert [c["optedOutAt"] for c in cached["contacts"]["nodes"]] == [None] * 3
    assert cached["dashboard"] == {"optedOutContactCount": 0}
    data = await gql.ok(CONTACTS)
    opted = {c["phone"]: c["optedOutAt"] is not None for c in data["contacts"]["nodes"]}
    assert opted == {phone(0): True, phone(1): False, phone(2): False}
    assert data["dashboard"] == {"optedOutContactCount": 1}


async def test_verify_contacts_refreshes_contact_lists(
    gql: GqlClient, session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given three contacts never checked, the list cached; one number is not on WhatsApp
    await given_campaign(session, "draft")
    cached = await gql.ok(CONTACTS)
    fake.undeliverable.add(phone(1).lstrip("+"))
    ids = list((await session.execute(text("SELECT id FROM contacts ORDER BY id"))).scalars())
    await session.commit()

    # when the worker checks them
    await contact_tasks.verify_contacts(make_deps(), ids)

    # then
    assert {c["whatsappStatus"] for c in cached["contacts"]["nodes"]} == {"UNKNOWN"}
    data = await gql.ok(CONTACTS)
    statuses = {c["phone"]: c["whatsappStatus"] for c in data["contacts"]["nodes"]}
    assert statuses == {phone(0): "VALID", phone(1): "INVALID", phone(2): "VALID"}
