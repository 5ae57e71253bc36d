"""Every query over HTTP: data, filters, pagination, and clear errors for bad arguments."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import CampaignStatus, Contact, InteractionKind, MessageStatus, WhatsAppStatus
from schema.common.ids import global_id
from tests import factories
from tests.conftest import GqlClient, Server

pytestmark = pytest.mark.asyncio

CONTACTS = """
query ($first: Int, $after: String, $search: String, $category: ID,
       $status: WhatsAppStatus, $optedOut: Boolean) {
  contacts(first: $first, after: $after, search: $search, categoryId: $category,
           whatsappStatus: $status, optedOut: $optedOut) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id phone name } }
  }
}
"""

CONTACT = """
query ($id: ID!) {
  contact(id: $id) {
    phone name attributes whatsappStatus
    categories { name }
    messages { totalCount nodes { status campaign { name } contact { phone } } }
    interactions { kind payload }
  }
}
"""

CATEGORY = """
query ($id: ID!) {
  category(id: $id) { name contactCount contacts(first: 2) { totalCount nodes { phone } } }
}
"""

CAMPAIGN = """
query ($id: ID!, $status: MessageStatus) {
  campaign(id: $id) {
    name status template { name language }
    targets { name }
    stats { total pending sent delivered read failed interactionCount deliveryRate readRate }
    messages(status: $status) { totalCount nodes { status contact { phone } } }
  }
}
"""

CAMPAIGNS_BY_STATUS = """
query ($status: CampaignStatus) { campaigns(status: $status) { totalCount nodes { name } } }
"""

MESSAGE_STATS = "{ messageStats { total pending sent delivered read failed interactionCount } }"

DASHBOARD = """
{
  dashboard {
    contactCount optedOutContactCount categoryCount campaignCount
    campaignsByStatus { status count }
    messageStats { total delivered interactionCount }
    recentCampaigns(first: 2) { name }
  }
}
"""


def _error_codes(errors: list[dict[str, Any]] | None) -> list[object]:
    assert errors is not None
    return [e.get("extensions", {}).get("code") for e in errors]


async def test_contacts_pages_forward_with_cursors(session: AsyncSession, gql: GqlClient) -> None:
    # given
    await factories.contacts(session, 25)
    await session.commit()
    seen: list[str] = []
    after = None
    # when
    for _ in range(3):
        page = (await gql.ok(CONTACTS, {"first": 10, "after": after}))["contacts"]
        seen.extend(edge["node"]["phone"] for edge in page["edges"])
        after = page["pageInfo"]["endCursor"]
        last = page
    # then
    assert len(seen) == 25
    assert len(set(seen)) == 25
    assert seen[0] == "+33610000024"  # newest first
    assert last["pageInfo"]["hasNextPage"] is False
    assert last["pageInfo"]["hasPreviousPage"] is True
    assert last["totalCount"] == 25


async def test_contacts_default_page_is_twenty(session: AsyncSession, gql: GqlClient) -> None:
    await factories.contacts(session, 25)
    await session.commit()
    page = (await gql.ok(CONTACTS))["contacts"]
    assert len(page["edges"]) == 20
    assert page["pageInfo"]["hasNextPage"] is True


async def test_contacts_filters(session: AsyncSession, gql: GqlClient) -> None:
    # given
    ids = await factories.contacts(session, 6)
    vip = await factories.category(session, "VIP", ids[:2])
    await session.execute(
        update(Contact).where(Contact.id == ids[3]).values(opted_out_at=datetime.now(UTC))
    )
    await session.execute(
        update(Contact)
        .where(Contact.id.in_(ids[4:]))
        .values(whatsapp_status=WhatsAppStatus.INVALID)
    )
    await session.commit()

    async def phones(**variables: object) -> list[str]:
        data = await gql.ok(CONTACTS, variables)
        return sorted(edge["node"]["phone"] for edge in data["contacts"]["edges"])

    # when / then
    assert await phones(search="contact 5") == ["+33610000005"]
    assert await phones(search="10000001") == ["+33610000001"]
    assert await phones(search="100%") == []  # LIKE wildcards are literal
    assert await phones(category=str(vip)) == ["+33610000000", "+33610000001"]
    assert await phones(optedOut=True) == ["+33610000003"]
    assert len(await phones(optedOut=False)) == 5
    assert await phones(status="INVALID") == ["+33610000004", "+33610000005"]


async def test_contact_with_everything(session: AsyncSession, gql: GqlClient) -> None:
    # given
    [contact] = await factories.contacts(session, 1)
    await factories.category(session, "VIP", [contact])
    campaign = await factories.campaign(session, "Launch")
    [message] = await factories.messages(session, campaign, [contact], MessageStatus.READ)
    await factories.interactions(session, [message], InteractionKind.CLICK)
    await session.commit()
    # when
    data = await gql.ok(CONTACT, {"id": str(contact)})
    # then
    assert data["contact"] == {
        "phone": "+33610000000",
        "name": "Contact 0",
        "attributes": {"first_name": "C0"},
        "whatsappStatus": "UNKNOWN",
        "categories": [{"name": "VIP"}],
        "messages": {
            "totalCount": 1,
            "nodes": [
                {
                    "status": "READ",
                    "campaign": {"name": "Launch"},
                    "contact": {"phone": "+33610000000"},
                }
            ],
        },
        "interactions": [{"kind": "CLICK", "payload": {"text": "hi"}}],
    }


async def test_unknown_ids_are_null(gql: GqlClient) -> None:
    for document in (CONTACT, CATEGORY, CAMPAIGN):
        data = await gql.ok(document, {"id": "999999"})
        assert list(data.values()) == [None]


async def test_category_counts_and_contacts(session: AsyncSession, gql: GqlClient) -> None:
    ids = await factories.contacts(session, 5)
    category = await factories.category(session, "Paris", ids[:3])
    await factories.category(session, "Lyon", ids[3:])
    await session.commit()
    data = await gql.ok(CATEGORY, {"id": str(category)})
    assert data["category"] == {
        "name": "Paris",
        "contactCount": 3,
        "contacts": {
            "totalCount": 3,
            "nodes": [{"phone": "+33610000002"}, {"phone": "+33610000001"}],
        },
    }


async def test_campaign_stats_and_filtered_messages(session: AsyncSession, gql: GqlClient) -> None:
    # given: 10 messages: 2 pending, 2 sent, 3 delivered, 2 read, 1 failed
    ids = await factories.contacts(session, 10)
    target = await factories.category(session, "All", ids)
    campaign = await factories.campaign(session, "Promo", CampaignStatus.COMPLETED, [target])
    statuses = (
        [MessageStatus.PENDING] * 2 + [MessageStatus.SENT] * 2 + [MessageStatus.DELIVERED] * 3
    )
    statuses += [MessageStatus.READ] * 2 + [MessageStatus.FAILED]
    for contact, status in zip(ids, statuses, strict=True):
        await factories.messages(session, campaign, [contact], status)
    [read_message] = await factories.messages(session, await factories.campaign(session), ids[:1])
    await factories.interactions(session, [read_message])  # another campaign's interaction
    await session.commit()
    # when
    data = await gql.ok(CAMPAIGN, {"id": str(campaign), "status": "DELIVERED"})
    # then
    assert data["campaign"]["stats"] == {
        "total": 10,
        "pending": 2,
        "sent": 2,
        "delivered": 3,
        "read": 2,
        "failed": 1,
        "interactionCount": 0,
        "deliveryRate": round(5 / 7, 4),
        "readRate": round(2 / 5, 4),
    }
    assert data["campaign"]["targets"] == [{"name": "All"}]
    assert data["campaign"]["template"] == {"name": "spring_sale", "language": "en"}
    assert data["campaign"]["messages"]["totalCount"] == 3
    assert {n["status"] for n in data["campaign"]["messages"]["nodes"]} == {"DELIVERED"}


async def test_campaigns_filter_by_status(session: AsyncSession, gql: GqlClient) -> None:
    await factories.campaign(session, "a", CampaignStatus.DRAFT)
    await factories.campaign(session, "b", CampaignStatus.SENDING)
    await factories.campaign(session, "c", CampaignStatus.SENDING)
    await session.commit()
    data = await gql.ok(CAMPAIGNS_BY_STATUS, {"status": "SENDING"})
    assert data["campaigns"] == {"totalCount": 2, "nodes": [{"name": "c"}, {"name": "b"}]}


async def test_message_stats_and_dashboard(session: AsyncSession, gql: GqlClient) -> None:
    # given
    ids = await factories.contacts(session, 4)
    await session.execute(
        update(Contact).where(Contact.id == ids[0]).values(opted_out_at=datetime.now(UTC))
    )
    await factories.category(session, "VIP", ids)
    first = await factories.campaign(session, "first", CampaignStatus.COMPLETED)
    await factories.campaign(session, "second", CampaignStatus.DRAFT)
    await factories.campaign(session, "third", CampaignStatus.DRAFT)
    delivered = await factories.messages(session, first, ids[:3], MessageStatus.DELIVERED)
    await factories.messages(session, first, ids[3:], MessageStatus.FAILED)
    await factories.interactions(session, delivered[:2])
    await session.commit()
    # when
    stats = (await gql.ok(MESSAGE_STATS))["messageStats"]
    dashboard = (await gql.ok(DASHBOARD))["dashboard"]
    # then
    assert stats == {
        "total": 4,
        "pending": 0,
        "sent": 0,
        "delivered": 3,
        "read": 0,
        "failed": 1,
        "interactionCount": 2,
    }
    by_status = {item["status"]: item["count"] for item in dashboard["campaignsByStatus"]}
    assert by_status == {status.name: 0 for status in CampaignStatus} | {"COMPLETED": 1, "DRAFT": 2}
    assert dashboard["contactCount"] == 4
    assert dashboard["optedOutContactCount"] == 1
    assert dashboard["categoryCount"] == 1
    assert dashboard["campaignCount"] == 3
    assert dashboard["messageStats"] == {"total": 4, "delivered": 3, "interactionCount": 2}
    assert dashboard["recentCampaigns"] == [{"name": "third"}, {"name": "second"}]


@asynccontextmanager
async def extra_totals(session: AsyncSession, **counts: int) -> AsyncIterator[None]:
    """A shard of the totals' counters holding `counts`, removed afterwards (the tables the
    suite truncates between tests do not include the counters)."""
    columns = ", ".join(counts)
    values = ", ".join(f":{name}" for name in counts)
    insert = text(f"INSERT INTO total_counters (shard, {columns}) VALUES (900, {values})")
    await session.execute(insert, counts)
    await session.commit()
    try:
        yield
    finally:
        await session.execute(text("DELETE FROM total_counters WHERE shard = 900"))
        await session.commit()


async def test_message_stats_past_ints_range_are_exact(
    session: AsyncSession, gql: GqlClient
) -> None:
    # given totals past Int's 2^31 - 1, as every campaign's messages together reach them
    delivered, read = 3_000_000_000, 2**31
    async with extra_totals(session, delivered=delivered, read=read):
        # when
        stats = (await gql.ok(MESSAGE_STATS))["messageStats"]
        dashboard = (await gql.ok(DASHBOARD))["dashboard"]
        page = await gql.ok("{ messages(first: 1) { totalCount } }")

    # then: BigInts, where Ints would have nulled the dashboard and the page
    assert stats["total"] == delivered + read
    assert (stats["delivered"], stats["read"]) == (delivered, read)
    assert dashboard["messageStats"]["total"] == delivered + read
    assert page["messages"]["totalCount"] == delivered + read


async def test_a_value_of_the_servers_own_past_its_type_is_an_internal_error(
    session: AsyncSession, gql: GqlClient, caplog: pytest.LogCaptureFixture
) -> None:
    # given a total no BigInt represents exactly (past 2^53 - 1)
    async with extra_totals(session, delivered=2**53):
        # when
        result = await gql(MESSAGE_STATS)

    # then: the server's fault, logged under an id; not the client's input
    assert result.data is None
    (error,) = result.errors or []
    assert error["path"] == ["messageStats", "total"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["errorId"] in caplog.text


@pytest.mark.parametrize(
    ("document", "variables", "argument"),
    [
        pytest.param(CONTACTS, {"first": 101}, "first", id="page over the max"),
        pytest.param(CONTACTS, {"first": -1}, "first", id="negative page"),
        pytest.param(CONTACTS, {"after": "not-a-cursor"}, "after", id="malformed cursor"),
        pytest.param(CONTACTS, {"after": "aWQ6eA=="}, "after", id="cursor of another shape"),
        pytest.param(CONTACTS, {"category": "abc"}, "categoryId", id="malformed filter id"),
        pytest.param(CONTACTS, {"search": "x" * 101}, "search", id="search over the max"),
        pytest.param(CONTACT, {"id": "1; DROP TABLE contacts"}, "id", id="malformed id"),
    ],
)
async def test_bad_arguments_are_clear_errors(
    gql: GqlClient, document: str, variables: dict[str, object], argument: str
) -> None:
    # when
    result = await gql(document, variables)
    # then
    assert result.status == 200
    assert result.data in (None, {"contact": None})
    assert result.errors is not None
    assert len(result.errors) == 1
    assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}
    assert argument in result.errors[0]["message"] or "cursor" in result.errors[0]["message"]


async def _cache_misses(http: httpx.AsyncClient, namespace: str) -> float:
    """The server's count of field cache lookups that missed in `namespace` (/metrics)."""
    prefix = f'herald_cache_misses_total{{namespace="{namespace}"}} '
    for line in (await http.get("/metrics")).text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


async def test_a_search_of_900_kb_is_refused_before_the_field_cache_and_any_sql(
    session: AsyncSession, http: httpx.AsyncClient, gql: GqlClient
) -> None:
    # given
    await factories.contacts(session, 3)
    await session.commit()
    misses = await _cache_misses(http, "contacts")

    # when
    result = await gql(CONTACTS, {"search": "a" * 900_000})

    # then: refused by the bound the schema declares, before the operation runs
    assert result.data is None
    assert result.errors == [
        {
            "message": "search must be at most 100 characters, got 900000",
            "extensions": {"code": "BAD_USER_INPUT", "argument": "search"},
        }
    ]
    assert (result.sql, result.redis) == (0, 0)
    # nor did the planned path, which hands a refusal over, look the page up in the cache
    assert await _cache_misses(http, "contacts") == misses


async def test_a_search_of_the_maximum_length_is_answered(
    session: AsyncSession, gql: GqlClient
) -> None:
    # given: a name of 100 characters
    [contact] = await factories.contacts(session, 1, name="n" * 100)
    await session.commit()

    # when
    data = await gql.ok(CONTACTS, {"search": "N" * 100})

    # then
    assert data["contacts"]["totalCount"] == 1
    assert [e["node"]["id"] for e in data["contacts"]["edges"]] == [global_id("Contact", contact)]


async def test_nested_page_over_the_max_is_an_error(session: AsyncSession, gql: GqlClient) -> None:
    await factories.campaign(session)
    await session.commit()
    result = await gql("{ campaigns { nodes { messages(first: 1000) { totalCount } } } }")
    assert _error_codes(result.errors) == ["BAD_USER_INPUT"]


async def test_failed_query_leaves_no_connection_checked_out(
    session: AsyncSession, gql: GqlClient, server: Server
) -> None:
    """A resolver error stops the response while loader batches are still scheduled."""
    # given
    ids = await factories.contacts(session, 5)
    await factories.category(session, "VIP", ids)
    await factories.campaign(session)
    await session.commit()
    document = "{ contacts { nodes { categories { name } messages(first: 1000) { totalCount } } } }"
    # when
    result = await gql(document)
    await asyncio.sleep(0.3)
    # then
    assert _error_codes(result.errors) == ["BAD_USER_INPUT"]
    assert server.app.state.runtime.engine.pool.checkedout() == 0
    assert (await gql.ok("{ contacts { totalCount } }"))["contacts"]["totalCount"] == 5
