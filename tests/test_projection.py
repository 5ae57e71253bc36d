"""Column projection: a page fetches only what its query selects, and a column it did not
fetch cannot be read by mistake (it raises instead of reading as None)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.repository import CampaignRepository
from app.config import Settings
from app.contacts.repository import ContactFilter, ContactRepository
from app.db.engine import count_statements, create_engine, create_sessionmaker
from app.db.pagination import Page
from app.messages.columns import MessageColumns
from app.messages.repository import MessageRepository
from app.models import CampaignStatus, MessageStatus, WhatsAppStatus
from loaders.base import projected
from loaders.messages import MessageBuilder
from schema.cache import decode, encode
from schema.campaigns.types import TEMPLATE_COLUMNS, CampaignType
from schema.common.selection import ColumnNotFetched, read_field, refetching
from schema.contacts.types import ContactType
from schema.messages.types import MessageType
from schema.request import TYPES, request_loaders
from tests import factories
from tests.conftest import GqlClient, projection_fallbacks

pytestmark = pytest.mark.asyncio

PAGE = """
query ($id: ID!) {
  campaign(id: $id) { messages(first: 5) { nodes { id status contact { phone } } } }
}
"""


async def _projected_page(session: AsyncSession) -> list[MessageType]:
    """A page of 3 messages fetched for `{ status contact { phone } }`."""
    contacts = await factories.contacts(session, 3)
    campaign_id = await factories.campaign(session)
    await factories.messages(session, campaign_id, contacts)
    await session.commit()
    columns = MessageColumns.of({"status"}, {"phone"})
    rows = await MessageRepository(session).page_per_campaign(
        [campaign_id], None, Page(limit=10), columns
    )
    return await MessageBuilder(session, TYPES).build(
        rows, with_contact=True, with_interactions=False
    )


async def test_unselected_message_column_raises_on_read(session: AsyncSession) -> None:
    # given a page whose query selected `status` and `contact { phone }` only
    messages = await _projected_page(session)

    # when / then the selected columns and the keys read; any other column raises
    assert len(messages) == 3
    message = messages[0]
    assert (message.status.value, message.contact_id > 0, message.campaign_id > 0) == (
        "sent",
        True,
        True,
    )
    assert message.contact is not None
    assert message.contact.phone.startswith("+336")
    with pytest.raises(ColumnNotFetched, match=r"MessageType\.sent_at was not fetched"):
        _ = message.sent_at
    with pytest.raises(ColumnNotFetched, match=r"ContactType\.name was not fetched"):
        _ = message.contact.name
    # an attribute that is no column at all is an ordinary AttributeError
    with pytest.raises(AttributeError) as raised:
        _ = message.no_such_thing  # type: ignore[attr-defined]
    assert not isinstance(raised.value, ColumnNotFetched)


async def test_cached_copy_of_a_projected_message_keeps_the_column_unreadable(
    session: AsyncSession,
) -> None:
    # given a projected message, stored in and rebuilt from the cache's codec
    [message, *_] = await _projected_page(session)

    # when
    rebuilt = decode(await encode(message))

    # then
    assert rebuilt.status == message.status
    with pytest.raises(ColumnNotFetched):
        _ = rebuilt.error


async def test_selected_columns_answer_over_http(gql: GqlClient, session: AsyncSession) -> None:
    # given
    contacts = await factories.contacts(session, 2)
    campaign_id = await factories.campaign(session)
    await factories.messages(session, campaign_id, contacts)
    await session.commit()

    # when
    data = await gql.ok(PAGE, {"id": str(campaign_id)})

    # then
    nodes = data["campaign"]["messages"]["nodes"]
    assert [node["status"] for node in nodes] == ["SENT", "SENT"]
    assert all(node["contact"]["phone"].startswith("+336") for node in nodes)


async def test_contacts_page_fetches_only_the_selected_columns(session: AsyncSession) -> None:
    # given
    await factories.contacts(session, 3)
    await session.commit()

    # when: a page for `{ phone whatsappStatus }` (names that are no column are dropped)
    rows = await ContactRepository(session).page(
        ContactFilter(), Page(limit=10), {"phone", "whatsapp_status", "categories"}
    )
    contacts = projected(rows.fields, ContactType)(rows.records)

    # then: those columns and the id, nothing else fetched or readable
    assert sorted(rows.fields) == ["id", "phone", "whatsapp_status"]
    assert len(contacts) == 3
    assert contacts[0].whatsapp_status is WhatsAppStatus.UNKNOWN
    assert contacts[0].phone.startswith("+336")
    assert isinstance(contacts[0].id, str)
    with pytest.raises(ColumnNotFetched, match=r"ContactType\.attributes was not fetched"):
        _ = contacts[0].attributes


async def test_a_cached_contacts_page_serves_any_later_selection(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: a searched page (cached) first asked for ids only
    await factories.contacts(session, 2)
    await session.commit()
    search = "query ($s: String) { contacts(search: $s) { nodes { id %s } } }"
    first = await gql.ok(search % "", {"s": "Contact"})

    # when: the same page, now with columns the first selection did not need
    second = await gql.ok(search % "name attributes createdAt", {"s": "Contact"})

    # then: the cached value held whole contacts
    nodes = second["contacts"]["nodes"]
    assert [n["id"] for n in nodes] == [n["id"] for n in first["contacts"]["nodes"]]
    assert sorted(n["name"] for n in nodes) == ["Contact 0", "Contact 1"]
    assert sorted(n["attributes"]["first_name"] for n in nodes) == ["C0", "C1"]
    assert all(n["createdAt"] for n in nodes)


async def test_campaigns_page_fetches_the_selected_columns_and_the_templates_key(
    session: AsyncSession,
) -> None:
    # given
    await factories.campaign(session, name="Winter sale")
    await session.commit()

    # when: a page for `{ name template { name } messages { … } }`
    rows = await CampaignRepository(session).page(
        None, Page(limit=10), {"name", "messages", *TEMPLATE_COLUMNS}
    )
    [campaign] = CampaignType.of_page(rows)

    # then: those columns and the id, the template's key among them
    assert sorted(rows.fields) == sorted(["id", "name", *TEMPLATE_COLUMNS])
    assert (campaign.name, campaign.template_name, campaign.template_language) == (
        "Winter sale",
        "spring_sale",
        "en",
    )
    assert isinstance(campaign.id, str)
    with pytest.raises(ColumnNotFetched, match=r"CampaignType\.created_at was not fetched"):
        _ = campaign.created_at


async def test_a_campaigns_page_fetches_what_its_resolvers_read(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: a finished campaign (its stats are cached, which the status decides)
    await factories.campaign(session, status=CampaignStatus.COMPLETED)
    await session.commit()

    # when: neither the status nor the template's columns are selected by name
    data = await gql.ok("{ campaigns { nodes { stats { total } template { body } } } }")

    # then
    assert data["campaigns"]["nodes"] == [{"stats": {"total": 0}, "template": {"body": ""}}]


MERGED_UNDER_A_DIRECTIVE = """
query ($id: ID!, $x: Boolean!) {
  campaign(id: $id) {
    messages(first: 2) { nodes { id } }
    messages(first: 2) @include(if: $x) { nodes { sentAt contact { phone } } }
  }
}
"""
SHARED_FRAGMENT = """
query OpA($id: ID!) { campaign(id: $id) { ...F } }
query OpB($id: ID!) { campaign(id: $id) { ...F messages(first: 2) { nodes { readAt } } } }
fragment F on Campaign { messages(first: 2) { nodes { id } } }
"""
ONE_FRAGMENT_TWO_MERGES = """
query ($a: ID!, $b: ID!) {
  b: campaign(id: $b) { ...F }
  a: campaign(id: $a) { ...F messages(first: 2) { nodes { readAt contact { phone } } } }
}
fragment F on Campaign { messages(first: 2) { nodes { id } } }
"""


async def _two_campaigns(session: AsyncSession) -> tuple[int, int]:
    contacts = await factories.contacts(session, 2)
    first = await factories.campaign(session, "first")
    second = await factories.campaign(session, "second")
    await factories.messages(session, first, contacts, MessageStatus.READ)
    await factories.messages(session, second, contacts, MessageStatus.READ)
    await session.commit()
    return first, second


async def test_a_field_merged_under_a_directive_fetches_what_it_selects(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: the document answered once without its second `messages`
    campaign_id, _ = await _two_campaigns(session)
    variables = {"id": str(campaign_id)}
    await gql.ok(MERGED_UNDER_A_DIRECTIVE, {**variables, "x": False})
    before = projection_fallbacks()

    # when: the same document, now with it
    data = await gql.ok(MERGED_UNDER_A_DIRECTIVE, {**variables, "x": True})

    # then: its columns were fetched with the page, not afterwards
    nodes = data["campaign"]["messages"]["nodes"]
    assert len(nodes) == 2
    assert [set(node) for node in nodes] == [{"id", "sentAt", "contact"}] * 2
    assert all(node["contact"]["phone"].startswith("+336") for node in nodes)
    assert projection_fallbacks() == before


async def test_operations_sharing_a_fragment_fetch_each_their_own_columns(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: the first operation answered
    campaign_id, _ = await _two_campaigns(session)
    first = await gql(SHARED_FRAGMENT, {"id": str(campaign_id)}, operation_name="OpA")
    assert first.errors is None
    before = projection_fallbacks()

    # when: the other operation, whose `messages` merges the fragment's with its own
    second = await gql(SHARED_FRAGMENT, {"id": str(campaign_id)}, operation_name="OpB")

    # then
    assert second.errors is None
    nodes = second.data["campaign"]["messages"]["nodes"]
    assert [set(node) for node in nodes] == [{"id", "readAt"}] * 2
    assert projection_fallbacks() == before


async def test_one_fragment_merged_differently_in_one_request(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    first, second = await _two_campaigns(session)
    before = projection_fallbacks()

    # when: `b.messages` is the fragment's alone, `a.messages` the fragment's and more
    data = await gql.ok(ONE_FRAGMENT_TWO_MERGES, {"a": str(first), "b": str(second)})

    # then
    assert [set(node) for node in data["b"]["messages"]["nodes"]] == [{"id"}, {"id"}]
    nodes = data["a"]["messages"]["nodes"]
    assert [set(node) for node in nodes] == [{"id", "readAt", "contact"}] * 2
    assert all(node["contact"]["phone"].startswith("+336") for node in nodes)
    assert projection_fallbacks() == before


async def test_a_column_read_without_being_fetched_costs_one_statement(
    session: AsyncSession, settings: Settings
) -> None:
    # given: a page's messages, fetched for `{ status contact { phone } }`
    messages = await _projected_page(session)
    engine = create_engine(settings)
    before = projection_fallbacks()

    # when: a column of each message and of its contact is read by the default resolver
    async with create_sessionmaker(engine)() as reader:
        loaders = request_loaders(reader, settings)
        with refetching(loaders), count_statements() as statements:
            sent_at = await read_field(messages[0], "sent_at")
            name = await read_field(messages[0].contact, "name")
            again = read_field(messages[0], "error")
    await engine.dispose()

    # then: the rows were fetched (one statement each), and kept for later reads
    assert sent_at is None  # fetched: the factory's messages were never sent
    assert str(name).startswith("Contact ")
    assert again is None  # read from what the first fetch brought
    assert statements.value == 2
    assert projection_fallbacks() == before + 2


async def test_outside_an_operation_an_unfetched_column_still_raises(
    session: AsyncSession,
) -> None:
    # given
    [message, *_] = await _projected_page(session)

    # when / then
    with pytest.raises(ColumnNotFetched):
        read_field(message, "sent_at")
