"""A template's lifecycle over HTTP: signed status webhooks, and the campaign mutations that
refuse a template WhatsApp would not send or the campaign cannot fill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns import tasks as campaign_tasks
from app.campaigns.halts import halt_key
from app.config import Settings
from app.models import CampaignStatus, TemplateCategory, TemplateStatus
from tests import factories
from tests.conftest import GqlClient
from tests.fake_whatsapp import BUSINESS_ACCOUNT_ID, FakeWhatsApp, seed_campaign
from tests.test_dispatch import (
    drain,
    make_deps_fixture,  # noqa: F401 (the `make_deps` fixture)
)
from tests.test_dispatch_mutations import RETRY_MARKETING, enqueued
from tests.test_webhooks import (
    post,
    secrets,  # noqa: F401 (autouse: the app secret the deliveries are signed with)
)

pytestmark = pytest.mark.asyncio

TEMPLATE_ERRORS = """
    ... on InvalidStateError { state }
    ... on TemplateNotApprovedError { message name language status }
    ... on TemplateParametersError { message parameterCount }
    ... on TemplateNotFoundError { name language }
"""
START = f"""
mutation Start($id: ID!) {{
  startCampaign(id: $id) {{
    __typename
    ... on StartCampaignSuccess {{ campaign {{ status template {{ body }} }} }}
    {TEMPLATE_ERRORS}
  }}
}}
"""
SCHEDULE = f"""
mutation Schedule($id: ID!, $at: DateTime!) {{
  scheduleCampaign(id: $id, at: $at) {{
    __typename
    ... on ScheduleCampaignSuccess {{ campaign {{ status }} }}
    {TEMPLATE_ERRORS}
  }}
}}
"""
RESUME = f"""
mutation Resume($id: ID!) {{
  resumeCampaign(id: $id) {{
    __typename
    ... on ResumeCampaignSuccess {{ campaign {{ status pauseReason {{ code }} }} }}
    {TEMPLATE_ERRORS}
  }}
}}
"""
CAMPAIGNS = """
{
  campaigns {
    nodes { databaseId status pauseReason { code errorCode message } template { status } }
  }
}
"""


def template_event(
    event: str, name: str = "spring_sale", language: str = "en", **more: Any
) -> dict[str, Any]:
    """A signed `message_template_status_update` delivery, as Meta posts it."""
    value = {
        "event": event,
        "message_template_id": 1689556908129832,
        "message_template_name": name,
        "message_template_language": language,
        "reason": "NONE",
        "message_template_category": "MARKETING",
        **more,
    }
    change = {"field": "message_template_status_update", "value": value}
    entry = {"id": BUSINESS_ACCOUNT_ID, "time": 1764000000, "changes": [change]}
    return {"object": "whatsapp_business_account", "entry": [entry]}


async def template_row(session: AsyncSession, name: str = "spring_sale") -> tuple[Any, ...]:
    row = await session.execute(
        text("SELECT status, reason, category FROM templates WHERE name = :n"), {"n": name}
    )
    await session.commit()
    return tuple(row.one())


async def campaigns(gql: GqlClient) -> dict[int, dict[str, Any]]:
    nodes = (await gql.ok(CAMPAIGNS))["campaigns"]["nodes"]
    return {node.pop("databaseId"): node for node in nodes}


async def given_campaigns(session: AsyncSession) -> dict[str, int]:
    """Campaigns of spring_sale (en) sending, scheduled in an hour, and a draft; one of
    another template, sending."""
    ids = {
        "sending": await factories.campaign(session, "Sending", CampaignStatus.SENDING),
        "scheduled": await factories.campaign(session, "Later", CampaignStatus.SCHEDULED),
        "draft": await factories.campaign(session, "Draft"),
        "other": await factories.campaign(session, "Other", CampaignStatus.SENDING),
    }
    await factories.template(session, "autumn_sale")
    await session.execute(
        text("UPDATE campaigns SET scheduled_at = now() + interval '1 hour' WHERE id = :c"),
        {"c": ids["scheduled"]},
    )
    await session.execute(
        text("UPDATE campaigns SET template_name = 'autumn_sale' WHERE id = :c"),
        {"c": ids["other"]},
    )
    await session.commit()
    return ids


@pytest.mark.parametrize(
    ("event", "code", "error_code", "advice"),
    [
        ("PAUSED", "TEMPLATE_PAUSED", 132015, "resume once the pause has ended"),
        ("DISABLED", "TEMPLATE_DISABLED", 132016, "cancel the campaign"),
    ],
)
async def test_a_template_paused_or_disabled_pauses_its_sending_and_scheduled_campaigns(
    http: httpx.AsyncClient,
    gql: GqlClient,
    session: AsyncSession,
    settings: Settings,
    event: str,
    code: str,
    error_code: int,
    advice: str,
) -> None:
    # given
    ids = await given_campaigns(session)
    title = {"title": "FIRST_PAUSE", "description": "Your message template has been paused"}

    # when WhatsApp reports the template's new status
    answer = await post(http, template_event(event, other_info=title))

    # then the template has it, with WhatsApp's words; its sending and scheduled campaigns
    # are paused with the reason a send would have met, and halted
    assert answer == 200
    assert await template_row(session) == (
        event,
        "FIRST_PAUSE: Your message template has been paused",
        "MARKETING",
    )
    found = await campaigns(gql)
    for name in ("sending", "scheduled"):
        reason = found[ids[name]]["pauseReason"]
        assert found[ids[name]]["status"] == "PAUSED"
        assert (reason["code"], reason["errorCode"]) == (code, error_code)
        assert advice in reason["message"]
    assert found[ids["draft"]] == {
        "status": "DRAFT",
        "pauseReason": None,
        "template": {"status": event},
    }
    assert found[ids["other"]]["status"] == "SENDING"
    client = redis.Redis.from_url(str(settings.redis_url))
    assert [client.exists(halt_key(ids[n])) for n in ("sending", "scheduled", "other")] == [1, 1, 0]


async def test_template_events_move_the_status_and_only_a_pause_stops_campaigns(
    http: httpx.AsyncClient, gql: GqlClient, session: AsyncSession
) -> None:
    # given a sending campaign of spring_sale
    campaign_id = await factories.campaign(session, "Spring", CampaignStatus.SENDING)
    await session.commit()
    seen = []

    # when a series of events arrives, each with its own delivery
    for event, more in [
        ("FLAGGED", {}),  # quality dropping: still approved
        ("REJECTED", {"reason": "PROMOTIONAL"}),
        ("APPROVED", {"message_template_category": "UTILITY"}),
        ("DISABLED", {}),
        ("REINSTATED", {}),
        ("SOMETHING_NEW", {}),  # an event Herald does not know: kept, read as UNKNOWN
    ]:
        assert await post(http, template_event(event, **more)) == 200
        seen.append(await template_row(session))

    # then
    assert seen == [
        ("APPROVED", None, "MARKETING"),
        ("REJECTED", "PROMOTIONAL", "MARKETING"),
        ("APPROVED", None, "UTILITY"),
        ("DISABLED", None, "MARKETING"),
        ("APPROVED", None, "MARKETING"),
        ("SOMETHING_NEW", None, "MARKETING"),
    ]
    found = await campaigns(gql)
    assert found[campaign_id]["template"] == {"status": "UNKNOWN"}
    assert found[campaign_id]["pauseReason"]["code"] == "TEMPLATE_DISABLED"


async def test_a_status_of_a_template_never_synced_is_acknowledged_and_changes_nothing(
    http: httpx.AsyncClient, session: AsyncSession
) -> None:
    # when
    answer = await post(http, template_event("PAUSED", name="unknown_one"))

    # then
    assert answer == 200
    assert await factories.count(session, factories.Template) == 0


async def test_a_locale_written_with_a_hyphen_names_the_synced_template(
    http: httpx.AsyncClient, session: AsyncSession
) -> None:
    # given a template synced as en_US, as the listing spells it
    await factories.template(session, "welcome", "en_US")
    await session.commit()

    # when its status arrives as en-US, as the webhook reference writes locales
    answer = await post(http, template_event("REJECTED", "welcome", "en-US"))

    # then
    assert answer == 200
    assert (await template_row(session, "welcome"))[0] == "REJECTED"


@pytest.mark.parametrize("mutation", ["start", "schedule"])
async def test_a_template_not_approved_is_refused_and_nothing_is_written(
    gql: GqlClient, session: AsyncSession, settings: Settings, mutation: str
) -> None:
    # given a draft of a template still under review
    await factories.template(session, status=TemplateStatus.PENDING)
    campaign_id = await factories.campaign(session)
    await session.commit()

    # when
    at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    document, variables = (START, {}) if mutation == "start" else (SCHEDULE, {"at": at})
    data = await gql.ok(document, {"id": str(campaign_id), **variables})

    # then
    assert next(iter(data.values())) == {
        "__typename": "TemplateNotApprovedError",
        "message": "template 'spring_sale' (en) is PENDING, not APPROVED: WhatsApp sends only "
        "approved templates. Once it is approved again (a status webhook, or `herald "
        "templates sync`), try again.",
        "name": "spring_sale",
        "language": "en",
        "status": "PENDING",
    }
    assert (await campaigns(gql))[campaign_id]["status"] == "DRAFT"
    assert enqueued(settings) == []


@pytest.mark.parametrize(
    ("body", "parameters", "components", "why"),
    [
        ("Hi {{1}}", [], [], "has numbered parameters ({{1}}): give template.parameters"),
        (
            "Hi {{1}}, {{2}}",
            [{"source": "name", "value": None}],
            [],
            "has 2 body parameters ({{1}}, {{2}}) and the campaign fills 1",
        ),
        (
            "Hi",
            [],
            [{"type": "HEADER", "format": "IMAGE"}],
            "has a media header (IMAGE), which Herald does not fill",
        ),
        (
            "Hi",
            [],
            [{"type": "BUTTONS", "buttons": [{"type": "URL", "url": "https://x.io/{{1}}"}]}],
            "has a URL button that needs a value",
        ),
    ],
)
async def test_parameters_the_campaign_cannot_fill_are_refused_at_start(
    gql: GqlClient,
    session: AsyncSession,
    settings: Settings,
    body: str,
    parameters: list[dict[str, Any]],
    components: list[dict[str, Any]],
    why: str,
) -> None:
    # given a draft of an approved template it cannot fill
    await factories.template(session, body=body, components=components)
    campaign_id = await factories.campaign(session)
    await session.execute(
        text("UPDATE campaigns SET template_parameters = CAST(:p AS jsonb) WHERE id = :c"),
        {"p": orjson.dumps(parameters).decode(), "c": campaign_id},
    )
    await session.commit()

    # when
    data = await gql.ok(START, {"id": str(campaign_id)})

    # then
    refused = data["startCampaign"]
    assert refused["__typename"] == "TemplateParametersError"
    assert why in refused["message"]
    assert refused["parameterCount"] == body.count("{{")
    assert enqueued(settings) == []


async def test_resume_is_refused_while_the_template_is_paused_and_allowed_once_approved(
    http: httpx.AsyncClient, gql: GqlClient, session: AsyncSession, settings: Settings
) -> None:
    # given campaigns paused by a template pause
    ids = await given_campaigns(session)
    await post(http, template_event("PAUSED"))

    # when resumed while the template is still paused
    refused = await gql.ok(RESUME, {"id": str(ids["sending"])})

    # then nothing moved
    assert refused["resumeCampaign"]["__typename"] == "TemplateNotApprovedError"
    assert refused["resumeCampaign"]["status"] == "PAUSED"
    assert (await campaigns(gql))[ids["sending"]]["status"] == "PAUSED"
    assert enqueued(settings) == []

    # when WhatsApp approves it again, and both are resumed
    await post(http, template_event("APPROVED"))
    sending = await gql.ok(RESUME, {"id": str(ids["sending"])})
    scheduled = await gql.ok(RESUME, {"id": str(ids["scheduled"])})

    # then the sending one sends again, the one paused before its time waits for it again
    assert sending["resumeCampaign"]["campaign"] == {"status": "SENDING", "pauseReason": None}
    assert scheduled["resumeCampaign"]["campaign"] == {"status": "SCHEDULED", "pauseReason": None}
    assert enqueued(settings) == [
        ("campaign.materialize", [ids["sending"]], False),
        ("campaign.start_scheduled", [ids["scheduled"]], True),
    ]


async def test_a_started_campaign_sends_the_approved_body_each_parameter_from_its_source(
    gql: GqlClient, session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given a template approved with a body other than the one the draft was created with,
    # filled from the contact's name, an attribute and a fixed text
    await factories.template(session, "spring_sale", "fr", body="{{2}}: {{1}} à {{3}}")
    campaign_id = await seed_campaign(session, 2)
    parameters = [
        {"source": "name", "value": None},
        {"source": "attribute", "value": "first_name"},
        {"source": "text", "value": "Paris"},
    ]
    await session.execute(
        text("UPDATE campaigns SET template_parameters = CAST(:p AS jsonb) WHERE id = :c"),
        {"p": orjson.dumps(parameters).decode(), "c": campaign_id},
    )
    await session.commit()
    fake.keep_payloads = True

    # when
    started = await gql.ok(START, {"id": str(campaign_id)})
    deps = make_deps()
    await campaign_tasks.materialize(deps, campaign_id)
    await drain(deps, campaign_id)

    # then
    assert started["startCampaign"]["campaign"]["template"] == {"body": "{{2}}: {{1}} à {{3}}"}
    templates: list[Any] = [payload["template"] for payload in fake.payloads]
    sent = sorted([p["text"] for p in t["components"][0]["parameters"]] for t in templates)
    assert sent == [["Contact 0", "C0", "Paris"], ["Contact 1", "C1", "Paris"]]


@pytest.mark.parametrize(("category", "retried"), [("MARKETING", 0), ("UTILITY", 1)])
async def test_only_a_marketing_templates_messages_are_held_at_the_marketing_limit(
    gql: GqlClient, session: AsyncSession, category: str, retried: int
) -> None:
    # given a completed campaign, one message refused at the per-user marketing limit
    await factories.template(session, "spring_sale", "fr", category=TemplateCategory(category))
    campaign_id = await seed_campaign(session, 1)
    await session.execute(
        text(
            "INSERT INTO messages (campaign_id, contact_id, status, error, error_code, failed_at)"
            " SELECT :c, id, 'failed', '131049: limit', 131049, now() FROM contacts"
        ),
        {"c": campaign_id},
    )
    await session.execute(
        text("UPDATE campaigns SET status = 'completed' WHERE id = :c"), {"c": campaign_id}
    )
    await session.commit()

    # when
    data = await gql.ok(RETRY_MARKETING, {"id": str(campaign_id), "all": False})

    # then a utility template's message is no marketing message: it goes out again
    assert data["retryFailedMessages"] == {"retried": retried, "marketingLimited": 1 - retried}
