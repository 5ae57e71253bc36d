"""Campaign editing mutations over HTTP: drafts only, targets, and all-or-nothing writes."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import Campaign, CampaignStatus, campaign_categories
from schema.common.ids import global_id
from tests import factories
from tests.conftest import GqlClient

pytestmark = pytest.mark.asyncio

CAMPAIGN_FIELDS = (
    "id name status template { name language body status parameterCount } "
    "templateParameters { source value } targets { name }"
)

CREATE_CAMPAIGN = f"""
mutation($input: CreateCampaignInput!) {{
  createCampaign(input: $input) {{
    __typename
    ... on CreateCampaignSuccess {{ campaign {{ {CAMPAIGN_FIELDS} }} }}
    ... on InvalidInputError {{ message field }}
    ... on NotFoundError {{ entity id }}
    ... on TemplateNotFoundError {{ message name language }}
  }}
}}
"""

UPDATE_CAMPAIGN = f"""
mutation($id: ID!, $input: UpdateCampaignInput!) {{
  updateCampaign(id: $id, input: $input) {{
    __typename
    ... on UpdateCampaignSuccess {{ campaign {{ {CAMPAIGN_FIELDS} }} }}
    ... on InvalidStateError {{ message entity id state }}
    ... on NotFoundError {{ entity id }}
    ... on InvalidInputError {{ field }}
    ... on TemplateNotFoundError {{ name language }}
  }}
}}
"""

DELETE_CAMPAIGN = """
mutation($id: ID!) {
  deleteCampaign(id: $id) {
    __typename
    ... on DeleteCampaignSuccess { deletedId }
    ... on InvalidStateError { id state }
    ... on NotFoundError { entity id }
  }
}
"""

SET_TARGETS = """
mutation($id: ID!, $categoryIds: [ID!]!) {
  setCampaignTargets(id: $id, categoryIds: $categoryIds) {
    __typename
    ... on SetCampaignTargetsSuccess { campaign { id targets { name } } }
    ... on InvalidStateError { id state }
    ... on NotFoundError { entity id }
  }
}
"""

TEMPLATE = {"name": "spring_sale", "language": "en_US"}
SYNCED = {**TEMPLATE, "body": "Hi {{1}}!", "status": "APPROVED", "parameterCount": 1}

CAMPAIGN_NAMES = "{ campaigns { nodes { name } } dashboard { recentCampaigns { name } } }"


async def stored(session: AsyncSession) -> list[tuple[str, str, CampaignStatus]]:
    rows = await session.execute(
        select(Campaign.name, Campaign.template_name, Campaign.status).order_by(Campaign.id)
    )
    return [tuple(r) for r in rows.all()]  # type: ignore[misc]


async def targets(session: AsyncSession, campaign_id: int) -> set[int]:
    stmt = select(campaign_categories.c.category_id).where(
        campaign_categories.c.campaign_id == campaign_id
    )
    return set((await session.execute(stmt)).scalars())


# -- createCampaign --------------------------------------------------------------------


async def test_create_campaign_is_a_draft_with_its_targets(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given a synced template with one numbered parameter
    await factories.template(session, "spring_sale", "en_US", body="Hi {{1}}!")
    vip = await factories.category(session, "VIP")
    gold = await factories.category(session, "Gold")
    await session.commit()
    template = {**TEMPLATE, "parameters": [{"source": "ATTRIBUTE", "value": "first_name"}]}

    # when
    data = await gql.ok(
        CREATE_CAMPAIGN,
        {
            "input": {
                "name": "Spring",
                "template": template,
                "targetCategoryIds": [str(vip), str(gold)],
            }
        },
    )

    # then it sends the synced template, its parameter filled as asked
    campaign = data["createCampaign"]["campaign"]
    assert campaign["status"] == "DRAFT"
    assert campaign["template"] == SYNCED
    assert campaign["templateParameters"] == [{"source": "ATTRIBUTE", "value": "first_name"}]
    assert campaign["targets"] == [{"name": "Gold"}, {"name": "VIP"}]
    assert campaign["id"] == global_id("Campaign", 1)
    assert await targets(session, 1) == {vip, gold}


async def test_create_campaign_whose_target_step_fails_leaves_no_campaign(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: the campaign row is inserted before the unknown category is found
    await factories.template(session, "spring_sale", "en_US", body="Hi {{1}}!")
    vip = await factories.category(session, "VIP")
    await session.commit()

    # when
    data = await gql.ok(
        CREATE_CAMPAIGN,
        {"input": {"name": "Spring", "template": TEMPLATE, "targetCategoryIds": [str(vip), "77"]}},
    )

    # then
    assert data["createCampaign"] == {
        "__typename": "NotFoundError",
        "entity": "Category",
        "id": global_id("Category", 77),
    }
    assert await factories.count(session, Campaign) == 0
    assert await factories.count(session, campaign_categories) == 0


@pytest.mark.parametrize(
    ("name", "template", "field"),
    [
        ("", TEMPLATE, "name"),
        ("Spring", {**TEMPLATE, "name": " "}, "template.name"),
        ("Spring", {**TEMPLATE, "language": "English"}, "template.language"),
        ("Spring", {**TEMPLATE, "language": "en\n"}, "template.language"),
        ("x" * 201, TEMPLATE, "name"),
        ("Spring", {**TEMPLATE, "name": "x" * 513}, "template.name"),
        (
            "Spring",
            {**TEMPLATE, "parameters": [{"source": "TEXT"}]},
            "template.parameters[0].value",
        ),
        (
            "Spring",
            {**TEMPLATE, "parameters": [{"source": "NAME"}, {"source": "ATTRIBUTE", "value": ""}]},
            "template.parameters[1].value",
        ),
        (
            "Spring",
            {**TEMPLATE, "parameters": [{"source": "PHONE", "value": "x"}]},
            "template.parameters[0].value",
        ),
        (
            "Spring",
            {**TEMPLATE, "parameters": [{"source": "TEXT", "value": "x" * 1_025}]},
            "template.parameters[0].value",
        ),
    ],
)
async def test_create_campaign_with_bad_input_writes_nothing(
    gql: GqlClient, session: AsyncSession, name: str, template: dict[str, str], field: str
) -> None:
    # given
    await factories.template(session, "spring_sale", "en_US", body="Hi {{1}}!")
    await session.commit()

    # when
    data = await gql.ok(CREATE_CAMPAIGN, {"input": {"name": name, "template": template}})

    # then
    assert data["createCampaign"]["__typename"] == "InvalidInputError"
    assert data["createCampaign"]["field"] == field
    assert await factories.count(session, Campaign) == 0


async def test_create_campaign_of_a_template_not_synced_writes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: spring_sale is synced in English only
    await factories.template(session, "spring_sale", "en_US", body="Hi {{1}}!")
    await session.commit()

    # when
    data = await gql.ok(
        CREATE_CAMPAIGN,
        {"input": {"name": "Spring", "template": {"name": "spring_sale", "language": "fr"}}},
    )

    # then
    assert data["createCampaign"] == {
        "__typename": "TemplateNotFoundError",
        "message": "no template 'spring_sale' in language 'fr' is synced from the WhatsApp "
        "Business Account: create it there, then run `herald templates sync`",
        "name": "spring_sale",
        "language": "fr",
    }
    assert await factories.count(session, Campaign) == 0


async def test_create_campaign_keeps_the_synced_body_of_whatsapps_maximum_length(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: 1,024 characters, WhatsApp's cap on a template body
    body = "Hi {{1}} " + "x" * (1_024 - 9)
    await factories.template(session, "spring_sale", "en_US", body=body)
    await session.commit()

    # when
    data = await gql.ok(CREATE_CAMPAIGN, {"input": {"name": "Spring", "template": TEMPLATE}})

    # then
    assert data["createCampaign"]["campaign"]["template"]["body"] == body
    stored_body = (await session.execute(select(Campaign.template_body))).scalar_one()
    assert stored_body == body


# -- updateCampaign --------------------------------------------------------------------


async def test_update_draft_campaign(gql: GqlClient, session: AsyncSession) -> None:
    # given
    campaign_id = await factories.campaign(session, "Spring")
    await factories.template(session, "summer_sale", "fr", body="Bonjour {{prenom}}")
    await session.commit()
    template = {"name": "summer_sale", "language": "fr"}

    # when
    data = await gql.ok(
        UPDATE_CAMPAIGN, {"id": str(campaign_id), "input": {"name": "Summer", "template": template}}
    )

    # then
    campaign = data["updateCampaign"]["campaign"]
    assert (campaign["name"], campaign["template"]) == (
        "Summer",
        {**template, "body": "Bonjour {{prenom}}", "status": "APPROVED", "parameterCount": 1},
    )
    assert campaign["templateParameters"] == []
    assert await stored(session) == [("Summer", "summer_sale", CampaignStatus.DRAFT)]


async def test_update_campaign_name_only_keeps_the_template(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    campaign_id = await factories.campaign(session, "Spring")
    await session.commit()

    # when
    data = await gql.ok(UPDATE_CAMPAIGN, {"id": str(campaign_id), "input": {"name": "Renamed"}})

    # then
    assert data["updateCampaign"]["campaign"]["template"]["name"] == "spring_sale"
    assert await stored(session) == [("Renamed", "spring_sale", CampaignStatus.DRAFT)]


@pytest.mark.parametrize(
    "status",
    [CampaignStatus.SCHEDULED, CampaignStatus.SENDING, CampaignStatus.COMPLETED],
)
async def test_update_non_draft_campaign_is_an_invalid_state_error(
    gql: GqlClient, session: AsyncSession, status: CampaignStatus
) -> None:
    # given
    campaign_id = await factories.campaign(session, "Spring", status=status)
    await session.commit()

    # when
    data = await gql.ok(UPDATE_CAMPAIGN, {"id": str(campaign_id), "input": {"name": "Changed"}})

    # then
    assert data["updateCampaign"] == {
        "__typename": "InvalidStateError",
        "message": f"cannot edit a {status} campaign: only drafts",
        "entity": "Campaign",
        "id": global_id("Campaign", campaign_id),
        "state": status.name,
    }
    assert await stored(session) == [("Spring", "spring_sale", status)]


async def test_update_unknown_campaign_is_not_found(gql: GqlClient) -> None:
    # when
    data = await gql.ok(UPDATE_CAMPAIGN, {"id": "5", "input": {"name": "X"}})

    # then
    assert data["updateCampaign"] == {
        "__typename": "NotFoundError",
        "entity": "Campaign",
        "id": global_id("Campaign", 5),
    }


async def test_update_campaign_with_an_empty_name_changes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    campaign_id = await factories.campaign(session, "Spring")
    await session.commit()

    # when
    data = await gql.ok(UPDATE_CAMPAIGN, {"id": str(campaign_id), "input": {"name": " "}})

    # then
    assert data["updateCampaign"] == {"__typename": "InvalidInputError", "field": "name"}
    assert await stored(session) == [("Spring", "spring_sale", CampaignStatus.DRAFT)]


async def test_update_campaign_to_a_template_not_synced_changes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    campaign_id = await factories.campaign(session, "Spring")
    await session.commit()
    template = {"name": "summer_sale", "language": "fr"}

    # when
    result = await gql(
        UPDATE_CAMPAIGN, {"id": str(campaign_id), "input": {"name": "Summer", "template": template}}
    )

    # then
    assert result.errors is None
    assert result.data["updateCampaign"] == {
        "__typename": "TemplateNotFoundError",
        "name": "summer_sale",
        "language": "fr",
    }
    assert await stored(session) == [("Spring", "spring_sale", CampaignStatus.DRAFT)]


# -- deleteCampaign --------------------------------------------------------------------


async def test_delete_draft_campaign(gql: GqlClient, session: AsyncSession) -> None:
    # given
    vip = await factories.category(session, "VIP")
    campaign_id = await factories.campaign(session, targets=[vip])
    await session.commit()

    # when
    data = await gql.ok(DELETE_CAMPAIGN, {"id": str(campaign_id)})

    # then
    assert data["deleteCampaign"] == {
        "__typename": "DeleteCampaignSuccess",
        "deletedId": global_id("Campaign", campaign_id),
    }
    assert await factories.count(session, Campaign) == 0
    assert await factories.count(session, campaign_categories) == 0


async def test_delete_sending_campaign_is_an_invalid_state_error(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    campaign_id = await factories.campaign(session, "Spring", status=CampaignStatus.SENDING)
    await session.commit()

    # when
    data = await gql.ok(DELETE_CAMPAIGN, {"id": str(campaign_id)})

    # then
    assert data["deleteCampaign"] == {
        "__typename": "InvalidStateError",
        "id": global_id("Campaign", campaign_id),
        "state": "SENDING",
    }
    assert await stored(session) == [("Spring", "spring_sale", CampaignStatus.SENDING)]


async def test_delete_unknown_campaign_is_not_found(gql: GqlClient) -> None:
    # when
    data = await gql.ok(DELETE_CAMPAIGN, {"id": "3"})

    # then
    assert data["deleteCampaign"] == {
        "__typename": "NotFoundError",
        "entity": "Campaign",
        "id": global_id("Campaign", 3),
    }


# -- setCampaignTargets ----------------------------------------------------------------


@pytest.mark.parametrize("status", [CampaignStatus.DRAFT, CampaignStatus.SCHEDULED])
async def test_set_campaign_targets_replaces_them(
    gql: GqlClient, session: AsyncSession, status: CampaignStatus
) -> None:
    # given
    vip = await factories.category(session, "VIP")
    gold = await factories.category(session, "Gold")
    silver = await factories.category(session, "Silver")
    campaign_id = await factories.campaign(session, status=status, targets=[vip, gold])
    await session.commit()

    # when
    data = await gql.ok(
        SET_TARGETS, {"id": str(campaign_id), "categoryIds": [str(gold), str(silver)]}
    )

    # then
    assert data["setCampaignTargets"]["campaign"]["targets"] == [
        {"name": "Gold"},
        {"name": "Silver"},
    ]
    assert await targets(session, campaign_id) == {gold, silver}


async def test_set_campaign_targets_to_none(gql: GqlClient, session: AsyncSession) -> None:
    # given
    vip = await factories.category(session, "VIP")
    campaign_id = await factories.campaign(session, targets=[vip])
    await session.commit()

    # when
    data = await gql.ok(SET_TARGETS, {"id": str(campaign_id), "categoryIds": []})

    # then
    assert data["setCampaignTargets"]["campaign"]["targets"] == []
    assert await targets(session, campaign_id) == set()


async def test_set_campaign_targets_with_an_unknown_category_changes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    vip = await factories.category(session, "VIP")
    gold = await factories.category(session, "Gold")
    campaign_id = await factories.campaign(session, targets=[vip])
    await session.commit()

    # when
    data = await gql.ok(SET_TARGETS, {"id": str(campaign_id), "categoryIds": [str(gold), "404"]})

    # then
    assert data["setCampaignTargets"] == {
        "__typename": "NotFoundError",
        "entity": "Category",
        "id": global_id("Category", 404),
    }
    assert await targets(session, campaign_id) == {vip}


async def test_set_targets_of_a_sending_campaign_is_an_invalid_state_error(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    vip = await factories.category(session, "VIP")
    gold = await factories.category(session, "Gold")
    campaign_id = await factories.campaign(session, status=CampaignStatus.SENDING, targets=[vip])
    await session.commit()

    # when
    data = await gql.ok(SET_TARGETS, {"id": str(campaign_id), "categoryIds": [str(gold)]})

    # then
    assert data["setCampaignTargets"] == {
        "__typename": "InvalidStateError",
        "id": global_id("Campaign", campaign_id),
        "state": "SENDING",
    }
    assert await targets(session, campaign_id) == {vip}


async def test_set_targets_of_an_unknown_campaign_is_not_found(gql: GqlClient) -> None:
    # when
    data = await gql.ok(SET_TARGETS, {"id": "9", "categoryIds": []})

    # then
    assert data["setCampaignTargets"] == {
        "__typename": "NotFoundError",
        "entity": "Campaign",
        "id": global_id("Campaign", 9),
    }


async def test_update_campaign_shows_in_the_lists_at_once(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: the dashboard's recent campaigns are cached (the second read sends no SQL);
    # the campaign list is read from PostgreSQL (one statement each time)
    campaign_id = await factories.campaign(session, "Spring")
    await session.commit()
    await gql.ok(CAMPAIGN_NAMES)
    read = await gql(CAMPAIGN_NAMES)
    assert read.data == {
        "campaigns": {"nodes": [{"name": "Spring"}]},
        "dashboard": {"recentCampaigns": [{"name": "Spring"}]},
    }
    assert read.sql == 1

    # when
    await gql.ok(UPDATE_CAMPAIGN, {"id": str(campaign_id), "input": {"name": "Summer"}})

    # then
    assert await gql.ok(CAMPAIGN_NAMES) == {
        "campaigns": {"nodes": [{"name": "Summer"}]},
        "dashboard": {"recentCampaigns": [{"name": "Summer"}]},
    }
