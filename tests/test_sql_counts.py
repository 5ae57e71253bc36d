"""N+1 stays dead: statements per query depend on its shape, never on page sizes or data."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models import MessageStatus
from tests import factories
from tests.conftest import GqlClient, serve

pytestmark = pytest.mark.asyncio

PAGE_SIZES = (1, 10, 100)

CAMPAIGNS_MESSAGES_CONTACTS = """
query ($n: Int!) {
  campaigns(first: $n) {
    totalCount
    nodes {
      name
      messages(first: $n) {
        totalCount
        edges { cursor node { status contact { phone name } interactions { kind } } }
      }
    }
  }
}
"""

CATEGORIES_CONTACT_COUNT = """
query ($n: Int!) { categories(first: $n) { nodes { name contactCount } } }
"""

MESSAGES_OF_CAMPAIGN = """
query ($n: Int!, $campaign: ID!) {
  messages(first: $n, campaignId: $campaign) { totalCount nodes { status contact { phone } } }
}
"""

CONTACTS_CATEGORIES = """
query ($n: Int!) { contacts(first: $n) { nodes { phone categories { name } } } }
"""

CONTACTS_MESSAGES = """
query ($n: Int!) {
  contacts(first: $n) {
    nodes { phone messages(first: $n) { nodes { status campaign { name } } } interactions { kind } }
  }
}
"""

CATEGORY_CONTACTS = """
query ($n: Int!) {
  categories(first: $n) { nodes { contacts(first: $n) { totalCount nodes { phone } } } }
}
"""

DASHBOARD = """
query ($n: Int!) {
  dashboard {
    contactCount optedOutContactCount categoryCount campaignCount
    campaignsByStatus { status count }
    messageStats { total sent delivered read failed interactionCount deliveryRate readRate }
    recentCampaigns(first: $n) { name targets { name } stats { total deliveryRate } }
  }
}
"""


async def _empty_cache(settings: Settings) -> None:
    client = Redis.from_url(settings.redis_url or "")
    await client.flushdb()
    await client.aclose()


@pytest_asyncio.fixture
async def wide_data(session: AsyncSession) -> dict[str, int]:
    """More than 100 items at every level, so page sizes 1, 10 and 100 all fill up."""
    contacts = await factories.contacts(session, 120)
    categories = [
        await factories.category(session, f"Segment {i}", contacts[i : i + 105]) for i in range(12)
    ]
    campaigns = [
        await factories.campaign(session, f"Campaign {i}", targets=categories[i % 12 : i % 12 + 2])
        for i in range(105)
    ]
    first_messages: list[int] = []
    for campaign in campaigns[-12:]:
        ids = await factories.messages(session, campaign, contacts, MessageStatus.DELIVERED)
        first_messages.extend(ids[:3])
    await factories.interactions(session, first_messages)
    await session.commit()
    return {"campaign": campaigns[-1]}


@pytest.mark.parametrize(
    ("document", "statements"),
    [
        # campaigns page, its count, messages+contacts (one join), interactions, message counts
        pytest.param(
            CAMPAIGNS_MESSAGES_CONTACTS, 5, id="campaigns{messages{contact,interactions}}"
        ),
        pytest.param(CATEGORIES_CONTACT_COUNT, 2, id="categories{contactCount}"),
        pytest.param(MESSAGES_OF_CAMPAIGN, 2, id="messages(campaignId){contact}"),
        pytest.param(CONTACTS_CATEGORIES, 2, id="contacts{categories}"),
        pytest.param(CONTACTS_MESSAGES, 4, id="contacts{messages{campaign},interactions}"),
        pytest.param(CATEGORY_CONTACTS, 3, id="categories{contacts}"),
        # all totals in one statement, recent campaigns, their targets, their stats
        pytest.param(DASHBOARD, 4, id="dashboard"),
    ],
)
async def test_statements_do_not_grow_with_page_size(
    gql: GqlClient, settings: Settings, wide_data: dict[str, int], document: str, statements: int
) -> None:
    # given
    variables = {"campaign": str(wide_data["campaign"])}
    counts = []
    sizes = PAGE_SIZES if document is not DASHBOARD else (1, 10, 20)
    # when
    for size in sizes:
        await _empty_cache(settings)  # count what the loaders do, not what the cache saves
        result = await gql(
            document, {**variables, "n": size} if "$campaign" in document else {"n": size}
        )
        assert result.errors is None, result.errors
        counts.append(result.sql)
    # then
    assert counts == [statements] * len(sizes)


async def test_big_page_returns_every_leaf(gql: GqlClient, wide_data: dict[str, int]) -> None:
    # when
    result = await gql(CAMPAIGNS_MESSAGES_CONTACTS, {"n": 100})
    # then
    campaigns = result.data["campaigns"]["nodes"]
    assert len(campaigns) == 100
    leaves = [e["node"]["contact"]["phone"] for c in campaigns for e in c["messages"]["edges"]]
    assert len(leaves) == 12 * 100  # 12 campaigns have 120 messages each
    assert result.data["campaigns"]["totalCount"] == 105


async def test_counter_sees_the_audits_n_plus_one(
    settings: Settings, wide_data: dict[str, int], admin_key: str
) -> None:
    """The same query with batching off costs one statement per item: the counter is real."""
    naive = settings.model_copy(update={"naive_resolvers": True})
    with serve(naive) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            gql = GqlClient(http, admin_key)
            small = await gql(CAMPAIGNS_MESSAGES_CONTACTS, {"n": 2})
            large = await gql(CAMPAIGNS_MESSAGES_CONTACTS, {"n": 10})
    # campaigns page + count, then per campaign: messages page + count, and per message
    # fetched (a page fetches one more than asked, to know about a next page): its
    # contact and its interactions.
    assert small.errors is None
    assert small.sql == 2 + 2 * (2 + 3 * 2)
    assert large.sql == 2 + 10 * (2 + 11 * 2)
