"""What a write changed reaches the cache once its transaction commits, and only then.

Services record what they changed in the session's `Changes`; the request's boundary applies
it after the commit (app/changes). A mutation that forgot to have its changes applied would
leave the generations below untouched; one whose savepoint rolled back but kept what it
recorded would bump them for nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.changes import Changes, Paused, changes_of, committed_changes, nested
from app.errors import NotFound
from app.models import CampaignStatus, PauseCode
from app.whatsapp.errors import PauseReason
from tests import factories
from tests.conftest import GqlClient

pytestmark = pytest.mark.asyncio

CREATE_CATEGORY = """mutation ($name: String!) {
  createCategory(input: {name: $name}) { ... on CreateCategorySuccess { category { id } } }
}"""
UPDATE_CATEGORY = """mutation ($id: ID!) {
  updateCategory(id: $id, input: {description: "Loyal"}) { __typename }
}"""
DELETE_CATEGORY = "mutation ($id: ID!) { deleteCategory(id: $id) { __typename } }"
CREATE_CONTACT = """mutation ($phone: String!, $categories: [ID!]!) {
  createContact(input: {phone: $phone, categoryIds: $categories}) {
    ... on CreateContactSuccess { contact { id } }
  }
}"""
UPDATE_CONTACT = """mutation ($id: ID!) {
  updateContact(id: $id, input: {name: "Ada"}) { __typename }
}"""
ADD_TO_CATEGORY = """mutation ($category: ID!, $contacts: [ID!]!) {
  addContactsToCategory(categoryId: $category, contactIds: $contacts) { __typename }
}"""
DELETE_CONTACT = "mutation ($id: ID!) { deleteContact(id: $id) { __typename } }"
CREATE_CAMPAIGN = """mutation ($number: ID) {
  createCampaign(input: {name: "Spring", template: {name: "spring_sale", language: "en"},
                         senderNumber: $number}) {
    __typename
    ... on CreateCampaignSuccess { campaign { id } }
  }
}"""
PAUSE_CAMPAIGN = "mutation ($id: ID!) { pauseCampaign(id: $id) { __typename } }"
ADD_SENDER_NUMBER = """mutation {
  addSenderNumber(input: {phoneNumberId: "1099", displayNumber: "15550001099"}) {
    ... on AddSenderNumberSuccess { senderNumber { id } }
  }
}"""
CAMPAIGN_IDS = "{ campaigns(first: 5) { nodes { id name } } }"
# A successful mutation, then one that fails (typed) after its service recorded a change.
CATEGORY_THEN_FAILED_CAMPAIGN = """mutation ($number: ID) {
  createCategory(input: {name: "Kept"}) { __typename }
  createCampaign(input: {name: "Undone", template: {name: "spring_sale", language: "en"},
                         senderNumber: $number}) { __typename }
}"""


async def generations(redis: Redis) -> dict[str, int]:
    """Every cache generation, by what follows `cache:gen:`."""
    found = {}
    async for key in redis.scan_iter("cache:gen:*"):
        found[key.decode().removeprefix("cache:gen:")] = int(await redis.get(key) or 0)
    return found


async def bumped(redis: Redis, gql: GqlClient, document: str, variables: dict[str, Any]) -> Any:
    """Run a mutation that must succeed; (its data, the generations it bumped and by how much)."""
    before = await generations(redis)
    data = await gql.ok(document, variables)
    after = await generations(redis)
    return data, {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


async def test_each_mutation_bumps_exactly_what_its_service_recorded(
    gql: GqlClient, redis: Redis, session: AsyncSession
) -> None:
    # given: a synced template and a sending campaign
    await factories.template(session)
    sending = await factories.campaign(session, "Sending", status=CampaignStatus.SENDING)
    await session.commit()
    [sending_id] = [
        node["id"]
        for node in (await gql.ok(CAMPAIGN_IDS))["campaigns"]["nodes"]
        if node["name"] == "Sending"
    ]
    # when, then: each mutation bumps what the table of app/cache/keys.py says, once
    data, delta = await bumped(redis, gql, CREATE_CATEGORY, {"name": "VIP"})
    category = data["createCategory"]["category"]["id"]
    assert delta == {"categories": 1}
    _, delta = await bumped(redis, gql, UPDATE_CATEGORY, {"id": category})
    assert delta == {"categories": 1}
    data, delta = await bumped(
        redis, gql, CREATE_CONTACT, {"phone": "+33612345678", "categories": [category]}
    )
    contact = data["createContact"]["contact"]["id"]
    assert delta == {"contacts": 1, "stats": 1, "categories": 1}
    _, delta = await bumped(redis, gql, UPDATE_CONTACT, {"id": contact})
    assert delta == {"contacts": 1, "stats": 1}
    data, delta = await bumped(
        redis, gql, CREATE_CONTACT, {"phone": "+33612345679", "categories": []}
    )
    other = data["createContact"]["contact"]["id"]
    assert delta == {"contacts": 1, "stats": 1}
    _, delta = await bumped(
        redis, gql, ADD_TO_CATEGORY, {"category": category, "contacts": [other]}
    )
    assert delta == {"categories": 1, "contacts": 1}
    _, delta = await bumped(
        redis, gql, ADD_TO_CATEGORY, {"category": category, "contacts": [other]}
    )
    assert delta == {}  # already a member: nothing changed
    _, delta = await bumped(redis, gql, DELETE_CONTACT, {"id": other})
    assert delta == {"contacts": 1, "stats": 1, "campaigns": 1, "categories": 1}
    _, delta = await bumped(redis, gql, DELETE_CATEGORY, {"id": category})
    assert delta == {"categories": 1, "contacts": 1, "campaigns": 1, "stats": 1}
    data, delta = await bumped(redis, gql, CREATE_CAMPAIGN, {"number": None})
    assert data["createCampaign"]["__typename"] == "CreateCampaignSuccess"
    assert delta == {"campaigns": 1, "stats": 1}
    _, delta = await bumped(redis, gql, ADD_SENDER_NUMBER, {})
    assert delta == {}
    # its progress, at once (its own scope, the lists), and its row (the lists, the stats)
    _, delta = await bumped(redis, gql, PAUSE_CAMPAIGN, {"id": sending_id})
    assert delta == {"campaigns": 2, "stats": 2, f"campaigns:{sending}": 1}


async def test_a_mutation_that_fails_after_recording_bumps_nothing(
    gql: GqlClient, redis: Redis, session: AsyncSession
) -> None:
    # given: a sender number the API knows by id, then removed; the campaign's service
    # records its creation before binding it to that number fails
    await factories.template(session)
    await session.commit()
    number = (await gql.ok(ADD_SENDER_NUMBER))["addSenderNumber"]["senderNumber"]["id"]
    await session.execute(text("DELETE FROM sender_numbers"))
    await session.commit()
    before = await generations(redis)
    # when
    data = await gql.ok(CATEGORY_THEN_FAILED_CAMPAIGN, {"number": number})
    # then: the failed mutation's writes and its recorded change are gone, the other's stay
    assert data == {
        "createCategory": {"__typename": "CreateCategorySuccess"},
        "createCampaign": {"__typename": "NotFoundError"},
    }
    assert (await session.execute(text("SELECT count(*) FROM campaigns"))).scalar() == 0
    after = await generations(redis)
    assert {k: n - before.get(k, 0) for k, n in after.items()} == {"categories": 1}


async def _record_then_fail(session: AsyncSession, record: Callable[[Changes], None]) -> None:
    """A savepoint that writes a row, records a change, then fails."""
    async with nested(session):
        await session.execute(text("INSERT INTO categories (name) VALUES ('undone')"))
        record(changes_of(session))
        raise NotFound("Thing", 1)


def _deleted_and_paused(changes: Changes) -> None:
    changes.contacts(deleted=True)
    changes.campaigns_paused(Paused(PauseReason(PauseCode.TEMPLATE_PAUSED, 132015, "x"), [2]))


async def test_a_savepoint_rolled_back_drops_what_was_recorded_inside_it(
    session: AsyncSession,
) -> None:
    # given
    await session.begin()
    changes = changes_of(session)
    changes.categories()
    # when: one savepoint released, one rolled back, one rolled back inside a released one
    async with nested(session):
        changes.campaign_progress(1)
    with pytest.raises(NotFound):
        await _record_then_fail(session, _deleted_and_paused)
    async with nested(session):
        changes.campaign_progress(1, force=True)
        with pytest.raises(NotFound):
            await _record_then_fail(session, Changes.campaign)
    # then: what the released ones recorded, nothing of the others; taken once
    taken = committed_changes(session)
    assert taken == Changes({"categories"}, {1: True}, [])
    assert changes_of(session) == Changes()
    assert (await session.execute(text("SELECT count(*) FROM categories"))).scalar() == 0
    await session.rollback()
