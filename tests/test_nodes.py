"""Relay's object identification: global ids, `node(id:)`, `nodes(ids:)`, id arguments."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import CampaignStatus, Contact, MessageStatus
from schema.common.ids import global_id
from tests import factories
from tests.conftest import GqlClient, create_api_key
from tests.test_ids import NOT_KEYS

pytestmark = pytest.mark.asyncio

NODE = """
query ($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Campaign { databaseId name targets { id name } }
    ... on Contact { databaseId phone categories { id } }
    ... on Category { databaseId name }
    ... on Message { databaseId status contact { id phone } interactions { id kind } }
    ... on Interaction { databaseId kind }
    ... on SenderNumber { databaseId phoneNumberId }
    ... on Template { name language }
    ... on ApiKey { databaseId name }
  }
}
"""
NODES = """
query ($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on Contact { phone } } }
"""
NODES_NAMED = """
query ($ids: [ID!]!) {
  nodes(ids: $ids) {
    id
    ... on Campaign { name }
    ... on Contact { phone }
    ... on Category { name }
    ... on Message { status contact { phone } }
  }
}
"""
IDS = """
query {
  campaigns(first: 5) { nodes { id databaseId } }
  contacts(first: 5) { nodes { id databaseId } }
  categories(first: 5) { nodes { id databaseId } }
}
"""
CAMPAIGN = "query ($id: ID!) { campaign(id: $id) { id databaseId name } }"
CONTACTS_OF = "query ($c: ID!) { contacts(categoryId: $c) { totalCount nodes { id } } }"
UPDATE_CONTACT = """
mutation ($id: ID!, $name: String) {
  updateContact(id: $id, input: { name: $name }) {
    __typename
    ... on UpdateContactSuccess { contact { id name } }
    ... on NotFoundError { entity id }
  }
}
"""
SET_TARGETS = """
mutation ($id: ID!, $categories: [ID!]!) {
  setCampaignTargets(id: $id, categoryIds: $categories) {
    __typename
    ... on SetCampaignTargetsSuccess { campaign { targets { id } } }
    ... on NotFoundError { entity id }
  }
}
"""
DELETE_CONTACT = """
mutation ($id: ID!) {
  deleteContact(id: $id) { ... on DeleteContactSuccess { deletedId } }
}
"""
ADD_NUMBER = """
mutation {
  addSenderNumber(input: { phoneNumberId: "3333", displayNumber: "+15550000003" }) {
    ... on AddSenderNumberSuccess { senderNumber { id databaseId } }
  }
}
"""
API_KEYS = "query { apiKeys { id databaseId name } }"


def encoded(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def world(session: AsyncSession) -> dict[str, Any]:
    """One object of each kind whose key is 1 where it can be, so keys collide across types."""
    contacts = await factories.contacts(session, 3)
    category = await factories.category(session, "VIP", contacts[:2])
    campaign = await factories.campaign(session, "Spring", targets=[category])
    messages = await factories.messages(session, campaign, contacts, MessageStatus.READ)
    await factories.interactions(session, messages[:1])
    await session.commit()
    return {
        "contacts": contacts,
        "category": category,
        "campaign": campaign,
        "messages": messages,
    }


async def test_ids_are_global_and_databaseId_keeps_the_key(
    session: AsyncSession, gql: GqlClient
) -> None:
    # given a campaign, a contact and a category that share the key 1
    made = await world(session)
    assert made["campaign"] == made["contacts"][0] == made["category"] == 1

    # when
    data = await gql.ok(IDS)

    # then
    campaign = data["campaigns"]["nodes"][0]
    contact = data["contacts"]["nodes"][-1]
    category = data["categories"]["nodes"][0]
    assert [campaign["databaseId"], contact["databaseId"], category["databaseId"]] == [1, 1, 1]
    assert campaign["id"] == encoded("Campaign:1") == "Q2FtcGFpZ246MQ=="
    assert contact["id"] == encoded("Contact:1")
    assert category["id"] == encoded("Category:1")


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("Campaign", lambda made: made["campaign"]),
        ("Contact", lambda made: made["contacts"][0]),
        ("Category", lambda made: made["category"]),
        ("Message", lambda made: made["messages"][0]),
        ("Interaction", lambda made: 1),
        ("Template", lambda made: "spring_sale:en"),
    ],
)
async def test_node_fetches_each_kind_by_its_global_id(
    session: AsyncSession, gql: GqlClient, kind: str, key: Any
) -> None:
    # given
    made = await world(session)
    id = global_id(kind, key(made))

    # when
    result = await gql(NODE, {"id": id})

    # then
    assert result.errors is None, result.errors
    node = result.data["node"]
    assert node["__typename"] == kind
    assert node["id"] == id
    if kind == "Template":
        assert (node["name"], node["language"]) == ("spring_sale", "en")
    else:
        assert node["databaseId"] == key(made)
    if kind == "Message":  # with what a page's message has: its contact and interactions
        assert node["contact"]["id"] == global_id("Contact", made["contacts"][0])
        assert node["interactions"] == [{"id": global_id("Interaction", 1), "kind": "REPLY"}]
    if kind == "Campaign":
        assert node["targets"] == [{"id": global_id("Category", made["category"]), "name": "VIP"}]


async def test_node_fetches_a_sender_number_and_an_api_key(gql: GqlClient) -> None:
    # given
    number = (await gql.ok(ADD_NUMBER))["addSenderNumber"]["senderNumber"]
    [key] = (await gql.ok(API_KEYS))["apiKeys"]

    # when
    found = [(await gql.ok(NODE, {"id": item["id"]}))["node"] for item in (number, key)]

    # then
    assert [(n["__typename"], n["id"], n["databaseId"]) for n in found] == [
        ("SenderNumber", number["id"], number["databaseId"]),
        ("ApiKey", key["id"], key["databaseId"]),
    ]


@pytest.mark.parametrize(
    "id",
    [
        encoded("Campaign:999"),  # unknown key
        encoded("Nothing:1"),  # no such type
        encoded("CampaignProgress:1"),  # a type that is no node
        encoded("Campaign:abc"),
        encoded("Campaign:"),
        encoded("Template:no_language"),
        encoded("Campaign:1")[:-2],  # padding cut
        "1",  # a numeric key names no type
        "not an id",
        "",
        "é" * 3,
        "A" * 5000,
        *NOT_KEYS,
    ],
)
async def test_node_of_an_id_naming_nothing_is_null(
    session: AsyncSession, gql: GqlClient, id: str
) -> None:
    # given
    await world(session)

    # when
    result = await gql(NODE, {"id": id})

    # then
    assert result.errors is None
    assert result.data == {"node": None}


async def test_nodes_answers_in_order_with_null_for_what_names_nothing(
    session: AsyncSession, gql: GqlClient
) -> None:
    # given
    made = await world(session)
    first, second = (global_id("Contact", key) for key in made["contacts"][:2])
    campaign = global_id("Campaign", made["campaign"])

    # when
    result = await gql(NODES, {"ids": [second, "garbage", campaign, first, second]})

    # then
    assert result.errors is None
    assert result.data["nodes"] == [
        {"__typename": "Contact", "id": second, "phone": "+33610000001"},
        None,
        {"__typename": "Campaign", "id": campaign},
        {"__typename": "Contact", "id": first, "phone": "+33610000000"},
        {"__typename": "Contact", "id": second, "phone": "+33610000001"},
    ]


async def test_nodes_costs_one_statement_per_type_whatever_the_number_of_ids(
    session: AsyncSession, gql: GqlClient
) -> None:
    # given 60 contacts, 20 categories, 10 campaigns with a message each
    contacts = await factories.contacts(session, 60)
    categories = [await factories.category(session, f"C{i}") for i in range(20)]
    campaigns = [await factories.campaign(session, f"K{i}") for i in range(10)]
    messages = [(await factories.messages(session, c, contacts[:1]))[0] for c in campaigns]
    await session.commit()
    few = [
        global_id("Contact", contacts[0]),
        global_id("Category", categories[0]),
        global_id("Campaign", campaigns[0]),
        global_id("Message", messages[0]),
    ]
    many = [
        *(global_id("Contact", key) for key in contacts),
        *(global_id("Category", key) for key in categories),
        *(global_id("Campaign", key) for key in campaigns),
        *(global_id("Message", key) for key in messages),
    ]

    # when
    one_each = await gql(NODES_NAMED, {"ids": few})
    all_of_them = await gql(NODES_NAMED, {"ids": many[:100]})

    # then: one statement per type (a message's contact comes with it)
    assert one_each.errors is None
    assert all_of_them.errors is None
    assert [one_each.sql, all_of_them.sql] == [4, 4]
    assert sum(node is not None for node in all_of_them.data["nodes"]) == 100
    assert all_of_them.data["nodes"][99]["contact"] == {"phone": "+33610000000"}


async def test_nodes_refuses_more_ids_than_a_page_holds(gql: GqlClient) -> None:
    # when
    result = await gql(NODES, {"ids": [encoded(f"Contact:{i}") for i in range(101)]})

    # then
    assert result.errors is not None
    assert [e["extensions"] for e in result.errors] == [
        {"code": "BAD_USER_INPUT", "argument": "ids"}
    ]


async def test_node_needs_a_key_and_api_keys_need_an_admin(
    session: AsyncSession, gql: GqlClient, settings: Any
) -> None:
    # given
    made = await world(session)
    [key] = (await gql.ok(API_KEYS))["apiKeys"]
    contact = global_id("Contact", made["contacts"][0])
    viewer = gql.as_key(await create_api_key(settings, "viewer"))

    # when
    anonymous = await gql.as_key(None)(NODE, {"id": contact})
    one = await viewer(NODE, {"id": key["id"]})
    mixed = await viewer(NODES, {"ids": [contact, key["id"]]})

    # then: without a key, nothing; a viewer gets contacts, not keys (as `apiKeys` refuses)
    assert anonymous.errors is not None
    assert anonymous.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert anonymous.data == {"node": None}
    assert one.data == {"node": None}
    assert [e["extensions"]["code"] for e in one.errors or []] == ["FORBIDDEN"]
    assert mixed.data["nodes"][0]["id"] == contact
    assert mixed.data["nodes"][1] is None
    assert [(e["extensions"]["code"], e["path"]) for e in mixed.errors or []] == [
        ("FORBIDDEN", ["nodes", 1])
    ]


async def test_id_arguments_take_the_global_id_or_the_numeric_key(
    session: AsyncSession, gql: GqlClient
) -> None:
    # given
    made = await world(session)
    key = made["campaign"]

    # when
    by_global = await gql.ok(CAMPAIGN, {"id": global_id("Campaign", key)})
    by_number = await gql.ok(CAMPAIGN, {"id": str(key)})
    renamed = await gql.ok(UPDATE_CONTACT, {"id": global_id("Contact", 2), "name": "Ana"})
    retargeted = await gql.ok(SET_TARGETS, {"id": str(key), "categories": []})

    # then
    assert by_global == by_number
    assert by_global["campaign"]["id"] == global_id("Campaign", key)
    assert renamed["updateContact"]["contact"] == {"id": global_id("Contact", 2), "name": "Ana"}
    assert retargeted["setCampaignTargets"]["campaign"]["targets"] == []


async def test_another_types_id_is_as_unknown_as_an_unknown_key(
    session: AsyncSession, gql: GqlClient
) -> None:
    # given ids of the right key but the wrong type
    made = await world(session)
    a_contact = global_id("Contact", made["campaign"])
    a_campaign = global_id("Campaign", made["category"])

    # when
    campaign = await gql(CAMPAIGN, {"id": a_contact})
    members = await gql(CONTACTS_OF, {"c": a_campaign})
    renamed = await gql.ok(UPDATE_CONTACT, {"id": a_campaign, "name": "Ana"})
    unknown = await gql.ok(UPDATE_CONTACT, {"id": "999", "name": "Ana"})
    targets = await gql.ok(SET_TARGETS, {"id": str(made["campaign"]), "categories": [a_contact]})

    # then: null, empty, or the typed NotFoundError, never a server error
    assert (campaign.errors, campaign.data) == (None, {"campaign": None})
    assert (members.errors, members.data) == (
        None,
        {"contacts": {"totalCount": 0, "nodes": []}},
    )
    assert renamed["updateContact"] == {
        "__typename": "NotFoundError",
        "entity": "Contact",
        "id": a_campaign,
    }
    assert unknown["updateContact"] == {
        "__typename": "NotFoundError",
        "entity": "Contact",
        "id": global_id("Contact", 999),
    }
    assert targets["setCampaignTargets"] == {
        "__typename": "NotFoundError",
        "entity": "Category",
        "id": a_contact,
    }
    # and nothing was written
    assert await factories.count(session, Contact) == 3
    names = await gql.ok("query { contacts(first: 5) { nodes { name } } }")
    assert "Ana" not in [n["name"] for n in names["contacts"]["nodes"]]


@pytest.mark.parametrize("id", [encoded("Campaign:abc"), "not an id", encoded("Campaign:1x")])
async def test_a_malformed_id_argument_is_bad_user_input(gql: GqlClient, id: str) -> None:
    # when
    result = await gql(CAMPAIGN, {"id": id})

    # then
    assert result.errors is not None
    assert [e["extensions"] for e in result.errors] == [
        {"code": "BAD_USER_INPUT", "argument": "id"}
    ]


async def test_deleted_ids_are_global(session: AsyncSession, gql: GqlClient) -> None:
    # given
    [contact] = await factories.contacts(session, 1)
    await session.commit()

    # when
    data = await gql.ok(DELETE_CONTACT, {"id": str(contact)})

    # then
    assert data["deleteContact"] == {"deletedId": global_id("Contact", contact)}


async def test_a_cursor_still_names_the_numeric_key(session: AsyncSession, gql: GqlClient) -> None:
    # given
    await factories.campaign(session, "A", status=CampaignStatus.DRAFT)
    await session.commit()

    # when
    data = await gql.ok("query { campaigns(first: 1) { edges { cursor } } }")

    # then: cursors are positions, not ids: unchanged by global ids
    assert data["campaigns"]["edges"] == [{"cursor": base64.urlsafe_b64encode(b"id:1").decode()}]


BIG = 3_000_000_000  # a key past Int's 2^31 - 1, as a 64-bit sequence reaches one
BIG_KEYS = """
query { contacts(first: 2) { nodes { id databaseId categories { databaseId } } } }
"""
RENAME_BIG = """
mutation ($id: ID!) {
  updateContact(id: $id, input: { name: "Big" }) {
    ... on UpdateContactSuccess { contact { databaseId name } }
  }
}
"""


async def test_a_key_past_32_bits_is_answered_by_queries_and_mutations(
    session: AsyncSession, gql: GqlClient
) -> None:
    # given a contact whose key is past Int's range, beside one that is not
    small = (await factories.contacts(session, 1))[0]
    (big,) = await factories.contacts(session, 1, start=1, id=BIG)
    await factories.category(session, "VIP", [big])
    await session.commit()

    # when: a page (the planned path) and a mutation's payload (the standard path)
    page = await gql.ok(BIG_KEYS)
    renamed = await gql.ok(RENAME_BIG, {"id": str(BIG)})

    # then: the key itself, where an Int would have nulled the whole page
    assert page["contacts"]["nodes"] == [
        {"id": encoded(f"Contact:{BIG}"), "databaseId": BIG, "categories": [{"databaseId": 1}]},
        {"id": encoded(f"Contact:{small}"), "databaseId": small, "categories": []},
    ]
    assert renamed["updateContact"]["contact"] == {"databaseId": BIG, "name": "Big"}
