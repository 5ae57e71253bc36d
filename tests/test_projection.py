"""Column projection: a page fetches only what its query selects, and a column it did not
fetch cannot be read by mistake (it raises instead of reading as None)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.messages.columns import MessageColumns
from app.messages.repository import MessageRepository
from app.pagination import Page
from loaders.messages import MessageBuilder
from schema.cache import decode, encode
from schema.common.selection import ColumnNotFetched
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
