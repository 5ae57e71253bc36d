"""Category mutations over HTTP: unique names as typed errors, partial updates, deletion."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import CampaignStatus, Category, Contact, campaign_categories, category_contacts
from schema.common.ids import global_id
from tests import factories
from tests.conftest import GqlClient

pytestmark = pytest.mark.asyncio

CREATE_CATEGORY = """
mutation($input: CreateCategoryInput!) {
  createCategory(input: $input) {
    __typename
    ... on CreateCategorySuccess { category { id name description contactCount } }
    ... on DuplicateError { message entity field value }
    ... on InvalidInputError { message field }
  }
}
"""

UPDATE_CATEGORY = """
mutation($id: ID!, $input: UpdateCategoryInput!) {
  updateCategory(id: $id, input: $input) {
    __typename
    ... on UpdateCategorySuccess { category { id name description } }
    ... on DuplicateError { field value }
    ... on NotFoundError { entity id }
    ... on InvalidInputError { field }
  }
}
"""

DELETE_CATEGORY = """
mutation($id: ID!) {
  deleteCategory(id: $id) {
    __typename
    ... on DeleteCategorySuccess { deletedId }
    ... on NotFoundError { entity id }
    ... on CategoryInUseError { id campaignIds message }
  }
}
"""

CREATE_TWO_CATEGORIES = """
mutation {
  first: createCategory(input: {name: "VIP"}) { __typename }
  second: createCategory(input: {name: "VIP", description: "again"}) {
    __typename
    ... on DuplicateError { value }
  }
}
"""

CATEGORY_NAMES = "{ categories { nodes { name } } }"


async def names(session: AsyncSession) -> dict[str, str | None]:
    rows = await session.execute(select(Category.name, Category.description))
    return {name: description for name, description in rows.all()}


async def test_create_category(gql: GqlClient, session: AsyncSession) -> None:
    # when
    data = await gql.ok(CREATE_CATEGORY, {"input": {"name": "  VIP ", "description": "Best"}})

    # then
    result = data["createCategory"]
    assert result["__typename"] == "CreateCategorySuccess"
    assert result["category"]["name"] == "VIP"
    assert result["category"]["contactCount"] == 0
    assert await names(session) == {"VIP": "Best"}


async def test_create_category_with_a_taken_name_is_a_duplicate_error(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    await factories.category(session, "VIP")
    await session.commit()

    # when
    result = await gql(CREATE_CATEGORY, {"input": {"name": "VIP", "description": "other"}})

    # then
    assert result.errors is None
    assert result.data["createCategory"] == {
        "__typename": "DuplicateError",
        "message": "a Category with name 'VIP' already exists",
        "entity": "Category",
        "field": "name",
        "value": "VIP",
    }
    assert await names(session) == {"VIP": None}


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
async def test_create_category_with_a_bad_name_is_invalid_input(
    gql: GqlClient, session: AsyncSession, name: str
) -> None:
    # when
    data = await gql.ok(CREATE_CATEGORY, {"input": {"name": name}})

    # then
    assert data["createCategory"]["__typename"] == "InvalidInputError"
    assert data["createCategory"]["field"] == "name"
    assert await factories.count(session, Category) == 0


async def test_create_category_with_a_description_over_the_maximum_writes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # when
    data = await gql.ok(CREATE_CATEGORY, {"input": {"name": "VIP", "description": "x" * 1_001}})

    # then
    assert data["createCategory"] == {
        "__typename": "InvalidInputError",
        "message": "description must be at most 1000 characters, got 1001",
        "field": "description",
    }
    assert await factories.count(session, Category) == 0


async def test_second_mutation_failing_keeps_the_first(
    gql: GqlClient, session: AsyncSession
) -> None:
    # when
    data = await gql.ok(CREATE_TWO_CATEGORIES)

    # then
    assert data["first"] == {"__typename": "CreateCategorySuccess"}
    assert data["second"] == {"__typename": "DuplicateError", "value": "VIP"}
    assert await names(session) == {"VIP": None}


async def test_update_category_changes_only_the_fields_given(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    vip = await factories.category(session, "VIP")
    await session.commit()

    # when
    data = await gql.ok(UPDATE_CATEGORY, {"id": str(vip), "input": {"description": "Top"}})
    renamed = await gql.ok(UPDATE_CATEGORY, {"id": str(vip), "input": {"name": "Gold"}})

    # then
    assert data["updateCategory"]["category"] == {
        "id": global_id("Category", vip),
        "name": "VIP",
        "description": "Top",
    }
    assert renamed["updateCategory"]["category"]["description"] == "Top"
    assert await names(session) == {"Gold": "Top"}


async def test_rename_category_to_a_taken_name_is_a_duplicate_error(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    await factories.category(session, "VIP")
    gold = await factories.category(session, "Gold")
    await session.commit()

    # when
    result = await gql(UPDATE_CATEGORY, {"id": str(gold), "input": {"name": "VIP"}})

    # then
    assert result.errors is None
    assert result.data["updateCategory"] == {
        "__typename": "DuplicateError",
        "field": "name",
        "value": "VIP",
    }
    assert await names(session) == {"VIP": None, "Gold": None}


async def test_update_category_with_a_null_name_is_invalid_input(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    vip = await factories.category(session, "VIP")
    await session.commit()

    # when
    data = await gql.ok(UPDATE_CATEGORY, {"id": str(vip), "input": {"name": None}})

    # then
    assert data["updateCategory"] == {"__typename": "InvalidInputError", "field": "name"}
    assert await names(session) == {"VIP": None}


async def test_update_category_with_a_description_over_the_maximum_changes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    vip = await factories.category(session, "VIP")
    await session.commit()

    # when
    data = await gql.ok(
        UPDATE_CATEGORY, {"id": str(vip), "input": {"name": "Gold", "description": "x" * 900_000}}
    )

    # then
    assert data["updateCategory"] == {"__typename": "InvalidInputError", "field": "description"}
    assert await names(session) == {"VIP": None}


async def test_update_unknown_category_is_not_found(gql: GqlClient) -> None:
    # when
    data = await gql.ok(UPDATE_CATEGORY, {"id": "31", "input": {"name": "X"}})

    # then
    assert data["updateCategory"] == {
        "__typename": "NotFoundError",
        "entity": "Category",
        "id": global_id("Category", 31),
    }


async def test_delete_category_keeps_its_contacts_and_leaves_campaign_targets(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    contact_ids = await factories.contacts(session, 2)
    vip = await factories.category(session, "VIP", members=contact_ids)
    gold = await factories.category(session, "Gold")
    await factories.campaign(session, targets=[vip, gold])
    await session.commit()

    # when
    data = await gql.ok(DELETE_CATEGORY, {"id": str(vip)})

    # then
    assert data["deleteCategory"] == {
        "__typename": "DeleteCategorySuccess",
        "deletedId": global_id("Category", vip),
    }
    assert await names(session) == {"Gold": None}
    assert await factories.count(session, Contact) == 2
    assert await factories.count(session, category_contacts) == 0
    targets = await session.execute(select(campaign_categories.c.category_id))
    assert list(targets.scalars()) == [gold]


@pytest.mark.parametrize("status", [CampaignStatus.SENDING, CampaignStatus.PAUSED])
async def test_delete_category_targeted_by_an_active_campaign_is_refused(
    gql: GqlClient, session: AsyncSession, status: CampaignStatus
) -> None:
    # given
    contact_ids = await factories.contacts(session, 2)
    vip = await factories.category(session, "VIP", members=contact_ids)
    campaign = await factories.campaign(session, status=status, targets=[vip])
    await session.commit()

    # when
    data = await gql.ok(DELETE_CATEGORY, {"id": str(vip)})

    # then
    assert data["deleteCategory"] == {
        "__typename": "CategoryInUseError",
        "id": str(vip),
        "campaignIds": [str(campaign)],
        "message": f"category {vip} is targeted by active campaign(s) {campaign}; "
        "cancel them or change their targets first",
    }
    assert await names(session) == {"VIP": None}
    assert await factories.count(session, category_contacts) == 2
    assert await factories.count(session, campaign_categories) == 1


async def test_delete_unknown_category_is_not_found(gql: GqlClient) -> None:
    # when
    data = await gql.ok(DELETE_CATEGORY, {"id": "12"})

    # then
    assert data["deleteCategory"] == {
        "__typename": "NotFoundError",
        "entity": "Category",
        "id": global_id("Category", 12),
    }


async def test_create_category_invalidates_the_cached_category_list(gql: GqlClient) -> None:
    # given: the list is cached (the second read sends no SQL)
    await gql.ok(CATEGORY_NAMES)
    cached = await gql(CATEGORY_NAMES)
    assert (cached.data, cached.sql) == ({"categories": {"nodes": []}}, 0)

    # when
    await gql.ok(CREATE_CATEGORY, {"input": {"name": "VIP"}})

    # then
    assert await gql.ok(CATEGORY_NAMES) == {"categories": {"nodes": [{"name": "VIP"}]}}
