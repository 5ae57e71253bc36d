"""Ids from clients: ASCII decimal keys only, one parser for arguments, cursors and webhooks."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.ids import parse_key
from tests import factories
from tests.conftest import GqlClient

# Text that `str.isdigit()` or `int()` accept but a key must not be: superscripts, other
# scripts' digits, signs, spaces, underscores, and more digits than a bigint holds.
NOT_KEYS = [
    "²",
    "١٢",
    "\uff11\uff12",
    "+1",
    "-1",
    " 1",
    "1 ",
    "1\n",
    "1_000",
    "0x1",
    "1e3",
    "",
    "9" * 19,
]
CONTACT = "query($id: ID!) { contact(id: $id) { id } }"
UPDATE_CONTACT = """
mutation($id: ID!) { updateContact(id: $id, input: {}) { __typename } }
"""
START = "mutation($id: ID!) { startCampaign(id: $id) { __typename } }"
CONTACTS_AFTER = "query($after: String) { contacts(after: $after) { nodes { id } } }"


def cursor(value: str) -> str:
    return base64.urlsafe_b64encode(f"id:{value}".encode()).decode()


@pytest.mark.parametrize("value", NOT_KEYS)
def test_only_ascii_decimals_are_keys(value: str) -> None:
    assert parse_key(value) is None


@pytest.mark.parametrize(("value", "key"), [("0", 0), ("12", 12), ("9" * 18, 10**18 - 1)])
def test_ascii_decimals_are_keys(value: str, key: int) -> None:
    assert parse_key(value) == key


def _bad_input(errors: list[dict[str, object]] | None, argument: str) -> None:
    assert errors is not None
    assert len(errors) == 1, errors
    assert errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}


@pytest.mark.asyncio
@pytest.mark.parametrize("value", NOT_KEYS)
async def test_contact_query_refuses_a_non_key(gql: GqlClient, value: str) -> None:
    result = await gql(CONTACT, {"id": value})
    _bad_input(result.errors, "id")
    assert result.data == {"contact": None}


@pytest.mark.asyncio
@pytest.mark.parametrize("value", NOT_KEYS)
async def test_update_contact_refuses_a_non_key(gql: GqlClient, value: str) -> None:
    result = await gql(UPDATE_CONTACT, {"id": value})
    _bad_input(result.errors, "id")


@pytest.mark.asyncio
@pytest.mark.parametrize("value", ["١٢", "\uff11\uff12", "+12", " 12", "1_2"])
async def test_start_campaign_does_not_read_other_digits_as_campaign_12(
    session: AsyncSession, gql: GqlClient, value: str
) -> None:
    # given: campaign 12 exists as a draft
    await session.execute(text("ALTER SEQUENCE campaigns_id_seq RESTART WITH 12"))
    campaign_id = await factories.campaign(session)
    await session.commit()
    assert campaign_id == 12
    # when
    result = await gql(START, {"id": value})
    # then: refused, and campaign 12 was not started
    _bad_input(result.errors, "id")
    status = await session.scalar(text("SELECT status FROM campaigns WHERE id = 12"))
    assert status == "draft"


@pytest.mark.asyncio
@pytest.mark.parametrize("value", NOT_KEYS)
async def test_cursor_with_a_non_key_is_refused(gql: GqlClient, value: str) -> None:
    result = await gql(CONTACTS_AFTER, {"after": cursor(value)})
    _bad_input(result.errors, "after")
