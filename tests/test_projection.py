"""Column projection: a page fetches only what its query selects, and a column it did not
fetch cannot be read by mistake (it raises instead of reading as None)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.repository import CampaignRepository
from app.contacts.repository import ContactFilter, ContactRepository
from app.messages.columns import MessageColumns
from app.messages.repository import MessageRepository
from app.models import CampaignStatus, WhatsAppStatus
from app.pagination import Page
from loaders.base import projected
from loaders.messages import MessageBuilder
from schema.cache import decode, encode
from schema.campaigns.types import TEMPLATE_COLUMNS, CampaignType
from schema.common.selection import ColumnNotFetched
from schema.contacts.types import ContactType
from schema.messages.types import MessageType
from schema.request import TYPES
from tests import factories
from tests.conftest import GqlClient

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


async def test_campaigns_page_fetches_the_selected_columns_and_builds_the_template(
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

    # then: those columns and the id, the template built from its three
    assert sorted(rows.fields) == sorted(["id", "name", *TEMPLATE_COLUMNS])
    assert (campaign.name, campaign.template.name, campaign.template.language) == (
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
