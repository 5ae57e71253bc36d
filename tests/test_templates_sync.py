"""Templates synced from the fake Cloud API's paged listing, then read through GraphQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from app.campaigns.halts import halt_key
from app.config import Provider, Settings
from app.models import CampaignStatus, TemplateCategory
from app.templates.service import Synced
from app.templates.tasks import sync_templates
from app.whatsapp.templates import FIELDS, PAGE_SIZE, ListingError
from tests import factories
from tests.conftest import GqlClient
from tests.fake_whatsapp import ACCESS_TOKEN, BUSINESS_ACCOUNT_ID, FakeWhatsApp

pytestmark = pytest.mark.asyncio

Sync = Callable[..., Awaitable[Synced]]

TEMPLATES = """
query Templates($status: TemplateStatus, $first: Int, $after: String) {
  templates(status: $status, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    nodes { name language status category body parameterCount placeholders reason whatsappId }
  }
}
"""
CAMPAIGN_TEMPLATES = """
{ campaigns { nodes { name template { name language status category body parameterCount } } } }
"""


def listed(
    name: str,
    language: str = "en",
    status: str = "APPROVED",
    category: str = "MARKETING",
    body: str = "Hi {{1}}",
    **more: Any,
) -> dict[str, Any]:
    """A template as the Cloud API lists it."""
    return {
        "id": f"wa-{name}-{language}",
        "name": name,
        "language": language,
        "status": status,
        "category": category,
        "components": [{"type": "BODY", "text": body}],
        **more,
    }


@pytest_asyncio.fixture
async def sync(settings: Settings, fake_server: tuple[FakeWhatsApp, str]) -> AsyncIterator[Sync]:
    """A sync against the fake Cloud API, as `herald templates sync` runs it."""
    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    client = redis.asyncio.Redis.from_url(str(settings.redis_url))

    async def run(**overrides: Any) -> Synced:
        values = {
            "whatsapp_provider": Provider.CLOUD_API,
            "whatsapp_api_base_url": fake_server[1],
            "whatsapp_business_account_id": BUSINESS_ACCOUNT_ID,
            "whatsapp_access_token": ACCESS_TOKEN,
            **overrides,
        }
        cloud = settings.model_copy(update=values)
        return await sync_templates(cloud, async_sessionmaker(engine), client)

    yield run
    await client.aclose()
    await engine.dispose()


async def stored(session: AsyncSession) -> dict[tuple[str, str], tuple[Any, ...]]:
    rows = await session.execute(
        text(
            "SELECT name, language, status, category, body, parameter_count, reason FROM templates"
        )
    )
    await session.commit()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


async def test_sync_follows_the_listings_cursor_to_its_last_page(
    sync: Sync, fake: FakeWhatsApp, session: AsyncSession
) -> None:
    # given 5 templates listed 2 per page
    fake.message_templates += [
        listed("spring_sale", body="Hi {{1}}, {{2}}% off"),
        listed("spring_sale", "fr", body="Bonjour {{first_name}} !"),
        listed("order_update", category="UTILITY", body="Order {{1}} shipped"),
        listed("bad_one", status="REJECTED", rejected_reason="PROMOTIONAL"),
        listed("future", status="SOMETHING_NEW", category="NEW_KIND", body="No variables"),
    ]

    # when
    synced = await sync()

    # then three pages were asked for, each after the cursor of the one before
    assert [r.get("after") for r in fake.listings] == [None, "cursor-2", "cursor-4"]
    assert {(r["fields"], r["limit"]) for r in fake.listings} == {(FIELDS, str(PAGE_SIZE))}
    assert (synced.listed, synced.added, synced.changed, synced.deleted) == (5, 5, 0, 0)
    assert await stored(session) == {
        ("spring_sale", "en"): ("APPROVED", "MARKETING", "Hi {{1}}, {{2}}% off", 2, None),
        ("spring_sale", "fr"): ("APPROVED", "MARKETING", "Bonjour {{first_name}} !", 1, None),
        ("order_update", "en"): ("APPROVED", "UTILITY", "Order {{1}} shipped", 1, None),
        ("bad_one", "en"): ("REJECTED", "MARKETING", "Hi {{1}}", 1, "PROMOTIONAL"),
        ("future", "en"): ("SOMETHING_NEW", "NEW_KIND", "No variables", 0, None),
    }


async def test_a_second_sync_rewrites_what_changed_and_marks_what_is_gone_deleted(
    sync: Sync, fake: FakeWhatsApp, session: AsyncSession
) -> None:
    # given a first sync of three templates
    fake.message_templates += [listed("a"), listed("b"), listed("c")]
    await sync()

    # when b is rejected and c deleted in the account
    fake.message_templates[:] = [listed("a"), listed("b", status="REJECTED")]
    synced = await sync()

    # then
    assert (synced.added, synced.changed, synced.deleted) == (0, 1, 1)
    statuses = {key: row[0] for key, row in (await stored(session)).items()}
    assert statuses == {("a", "en"): "APPROVED", ("b", "en"): "REJECTED", ("c", "en"): "DELETED"}

    # and a third sync of the same listing changes nothing
    again = await sync()
    assert (again.added, again.changed, again.deleted) == (0, 0, 0)


async def test_a_sync_finding_a_template_paused_pauses_its_sending_and_scheduled_campaigns(
    sync: Sync, fake: FakeWhatsApp, session: AsyncSession, settings: Settings
) -> None:
    # given campaigns of spring_sale (en): sending, scheduled, a draft; one of another template
    sending = await factories.campaign(session, "Sending", CampaignStatus.SENDING)
    scheduled = await factories.campaign(session, "Later", CampaignStatus.SCHEDULED)
    draft = await factories.campaign(session, "Draft")
    other = await factories.campaign(session, "Other", CampaignStatus.SENDING)
    await factories.template(session, "other")
    await session.execute(
        text("UPDATE campaigns SET scheduled_at = :at WHERE id = :c"),
        {"at": datetime.now(UTC) + timedelta(hours=1), "c": scheduled},
    )
    await session.execute(
        text("UPDATE campaigns SET template_name = 'other' WHERE id = :c"), {"c": other}
    )
    await session.commit()
    fake.message_templates += [listed("spring_sale", status="PAUSED", body=""), listed("other")]

    # when
    synced = await sync()

    # then the sending and scheduled ones of the template are paused with the reason
    assert synced.campaigns_paused == 2
    rows = await session.execute(
        text("SELECT id, status, pause_code, pause_error_code FROM campaigns ORDER BY id")
    )
    await session.commit()
    assert [tuple(r) for r in rows] == [
        (sending, "paused", "template_paused", 132015),
        (scheduled, "paused", "template_paused", 132015),
        (draft, "draft", None, None),
        (other, "sending", None, None),
    ]
    client = redis.asyncio.Redis.from_url(str(settings.redis_url))
    marks = [await client.exists(halt_key(c)) for c in (sending, scheduled, draft, other)]
    assert marks == [1, 1, 0, 0]
    await client.aclose()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"whatsapp_access_token": "wrong"}, "the Cloud API answered HTTP 401: (#190)"),
        ({"whatsapp_business_account_id": ""}, "HERALD_WHATSAPP_BUSINESS_ACCOUNT_ID is not set"),
        ({"whatsapp_api_base_url": "http://127.0.0.1:1/v21.0"}, "the Cloud API did not answer"),
    ],
)
async def test_a_listing_that_cannot_be_read_changes_nothing(
    sync: Sync,
    fake: FakeWhatsApp,
    session: AsyncSession,
    overrides: dict[str, str],
    error: str,
) -> None:
    # given a synced template the account no longer lists
    await factories.template(session, "old")
    await session.commit()
    fake.message_templates.append(listed("new"))

    # when / then
    with pytest.raises(ListingError, match=error.replace("(", r"\(").replace(")", r"\)")):
        await sync(**overrides)
    assert list(await stored(session)) == [("old", "en")]
    assert (await stored(session))[("old", "en")][0] == "APPROVED"


async def test_the_simulated_account_lists_the_demo_templates(
    sync: Sync, fake: FakeWhatsApp, session: AsyncSession
) -> None:
    # when
    synced = await sync(whatsapp_provider=Provider.SIMULATED)

    # then
    assert (synced.added, fake.listings) == (6, [])
    assert all(row[0] == "APPROVED" for row in (await stored(session)).values())


async def test_templates_query_filters_by_status_and_pages(
    gql: GqlClient, sync: Sync, fake: FakeWhatsApp
) -> None:
    # given
    fake.message_templates += [
        listed("a"),
        listed("b", status="PAUSED"),
        listed("c", body="Hello {{name}}, {{city}}"),
        listed("d", status="SOMETHING_NEW"),
    ]
    await sync()

    # when
    approved = await gql.ok(TEMPLATES, {"status": "APPROVED", "first": 1})
    after = approved["templates"]["pageInfo"]["endCursor"]
    rest = await gql.ok(TEMPLATES, {"status": "APPROVED", "first": 1, "after": after})
    unknown = await gql.ok(TEMPLATES, {"status": "UNKNOWN"})
    everything = await gql.ok(TEMPLATES, {})

    # then newest first, in the status asked for; a status Herald does not know is UNKNOWN
    assert approved["templates"]["totalCount"] == 2
    assert approved["templates"]["pageInfo"]["hasNextPage"] is True
    assert approved["templates"]["nodes"] == [
        {
            "name": "c",
            "language": "en",
            "status": "APPROVED",
            "category": "MARKETING",
            "body": "Hello {{name}}, {{city}}",
            "parameterCount": 2,
            "placeholders": ["name", "city"],
            "reason": None,
            "whatsappId": "wa-c-en",
        }
    ]
    assert [n["name"] for n in rest["templates"]["nodes"]] == ["a"]
    assert [(n["name"], n["status"]) for n in unknown["templates"]["nodes"]] == [("d", "UNKNOWN")]
    assert [n["name"] for n in everything["templates"]["nodes"]] == ["d", "c", "b", "a"]


async def test_campaign_templates_are_read_in_one_statement_for_a_whole_page(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given four campaigns of two synced templates, and one of a template never synced
    for name in ("A", "B", "C"):
        await factories.campaign(session, name)
    await factories.template(session, "order_update", body="Order {{1}}")
    await factories.template(session, "order_update", "fr", category=TemplateCategory.UTILITY)
    campaign = await factories.campaign(session, "D")
    await session.execute(
        text(
            "UPDATE campaigns SET template_language = 'fr', template_name = 'order_update' "
            "WHERE id = :c"
        ),
        {"c": campaign},
    )
    legacy = await factories.campaign(session, "E")
    await session.execute(
        text(
            "UPDATE campaigns SET template_name = 'legacy', template_body = 'Hi {{1}} {{2}}' "
            "WHERE id = :c"
        ),
        {"c": legacy},
    )
    await session.commit()

    # when
    result = await gql(CAMPAIGN_TEMPLATES)

    # then the page and its templates: two statements
    assert result.errors is None
    assert result.sql == 2
    templates = {n["name"]: n["template"] for n in result.data["campaigns"]["nodes"]}
    assert (
        templates["A"]
        == templates["C"]
        == {
            "name": "spring_sale",
            "language": "en",
            "status": "APPROVED",
            "category": "MARKETING",
            "body": "",
            "parameterCount": 0,
        }
    )
    assert (templates["D"]["language"], templates["D"]["category"]) == ("fr", "UTILITY")
    assert templates["E"] == {
        "name": "legacy",
        "language": "en",
        "status": "UNKNOWN",
        "category": "UNKNOWN",
        "body": "Hi {{1}} {{2}}",
        "parameterCount": 2,
    }
