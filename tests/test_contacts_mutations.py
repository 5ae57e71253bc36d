"""Contact mutations over HTTP: phone normalization, typed errors, bulk import, memberships."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.contacts.service import (
    IMPORT_CHUNK,
    ContactService,
    ImportRowErrorReason,
)
from app.models import Contact, category_contacts
from schema.common.ids import global_id
from tests import factories
from tests.conftest import GqlClient, Server, serve, turns_taken

pytestmark = pytest.mark.asyncio

CONTACT_FIELDS = "id phone name attributes"

CREATE_CONTACT = f"""
mutation($input: CreateContactInput!) {{
  createContact(input: $input) {{
    __typename
    ... on CreateContactSuccess {{ contact {{ {CONTACT_FIELDS} categories {{ name }} }} }}
    ... on InvalidPhoneError {{ message phone }}
    ... on DuplicateError {{ message entity field value }}
    ... on InvalidInputError {{ message field }}
    ... on NotFoundError {{ message entity id }}
  }}
}}
"""

UPDATE_CONTACT = f"""
mutation($id: ID!, $input: UpdateContactInput!) {{
  updateContact(id: $id, input: $input) {{
    __typename
    ... on UpdateContactSuccess {{ contact {{ {CONTACT_FIELDS} }} }}
    ... on Error {{ message }}
    ... on InvalidPhoneError {{ phone }}
    ... on DuplicateError {{ field value }}
    ... on NotFoundError {{ entity id }}
  }}
}}
"""

DELETE_CONTACT = """
mutation($id: ID!) {
  deleteContact(id: $id) {
    __typename
    ... on DeleteContactSuccess { deletedId }
    ... on NotFoundError { entity id }
  }
}
"""

IMPORT_CONTACTS = """
mutation($input: ImportContactsInput!) {
  importContacts(input: $input) {
    __typename
    ... on ImportContactsSuccess {
      created updated
      contacts { phone name attributes }
      errors { index phone reason message }
    }
    ... on InvalidInputError { message field }
    ... on NotFoundError { entity id }
  }
}
"""

IMPORT_COUNTS = """
mutation($input: ImportContactsInput!) {
  importContacts(input: $input) {
    __typename
    ... on ImportContactsSuccess { created updated errors { index phone reason } }
  }
}
"""

ADD_TO_CATEGORY = """
mutation($categoryId: ID!, $contactIds: [ID!]!) {
  addContactsToCategory(categoryId: $categoryId, contactIds: $contactIds) {
    __typename
    ... on AddContactsToCategorySuccess { added category { id name contactCount } }
    ... on NotFoundError { entity id }
  }
}
"""

REMOVE_FROM_CATEGORY = """
mutation($categoryId: ID!, $contactIds: [ID!]!) {
  removeContactsFromCategory(categoryId: $categoryId, contactIds: $contactIds) {
    __typename
    ... on RemoveContactsFromCategorySuccess { removed category { id contactCount } }
    ... on NotFoundError { entity id }
  }
}
"""

CREATE_TWO_CONTACTS = """
mutation {
  first: createContact(input: {phone: "+33612345678", name: "Ada"}) { __typename }
  second: createContact(input: {phone: "06 12 34 56 78", defaultRegion: "FR"}) {
    __typename
    ... on DuplicateError { value }
  }
}
"""

CONTACT_COUNT = "query($id: ID!) { category(id: $id) { contactCount } }"


async def phones(session: AsyncSession) -> dict[str, str | None]:
    rows = await session.execute(select(Contact.phone, Contact.name))
    return {phone: name for phone, name in rows.all()}


async def members(session: AsyncSession, category_id: int) -> set[int]:
    stmt = select(category_contacts.c.contact_id).where(
        category_contacts.c.category_id == category_id
    )
    return set((await session.execute(stmt)).scalars())


def french(i: int) -> str:
    """A distinct valid French mobile number in E.164."""
    return f"+336{20_000_000 + i:08d}"


# -- createContact ---------------------------------------------------------------------


async def test_create_contact_normalizes_a_national_number(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    variables = {
        "input": {
            "phone": "06 12 34 56 78",
            "defaultRegion": "fr",
            "name": "Ada",
            "attributes": {"first_name": "Ada"},
        }
    }

    # when
    data = await gql.ok(CREATE_CONTACT, variables)

    # then
    result = data["createContact"]
    assert result["__typename"] == "CreateContactSuccess"
    assert result["contact"]["phone"] == "+33612345678"
    assert result["contact"]["attributes"] == {"first_name": "Ada"}
    assert result["contact"]["categories"] == []
    assert await phones(session) == {"+33612345678": "Ada"}


async def test_create_contact_with_an_invalid_phone_names_it_and_writes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    variables = {"input": {"phone": "+33 12", "name": "Nobody"}}

    # when
    result = await gql(CREATE_CONTACT, variables)

    # then
    assert result.errors is None
    error = result.data["createContact"]
    assert error["__typename"] == "InvalidPhoneError"
    assert error["phone"] == "+33 12"
    assert "'+33 12'" in error["message"]
    assert await factories.count(session, Contact) == 0


async def test_create_contact_national_number_without_region_is_invalid(gql: GqlClient) -> None:
    # when
    data = await gql.ok(CREATE_CONTACT, {"input": {"phone": "06 12 34 56 78"}})

    # then
    assert data["createContact"]["__typename"] == "InvalidPhoneError"
    assert data["createContact"]["phone"] == "06 12 34 56 78"


async def test_create_contact_with_an_unknown_region_is_invalid_input(
    gql: GqlClient, session: AsyncSession
) -> None:
    # when
    data = await gql.ok(CREATE_CONTACT, {"input": {"phone": "0612345678", "defaultRegion": "XX"}})

    # then
    assert data["createContact"]["__typename"] == "InvalidInputError"
    assert data["createContact"]["field"] == "defaultRegion"
    assert await factories.count(session, Contact) == 0


async def test_create_contact_with_attributes_not_an_object_is_invalid_input(
    gql: GqlClient, session: AsyncSession
) -> None:
    # when
    data = await gql.ok(CREATE_CONTACT, {"input": {"phone": "+33612345678", "attributes": [1]}})

    # then
    assert data["createContact"]["__typename"] == "InvalidInputError"
    assert data["createContact"]["field"] == "attributes"
    assert await factories.count(session, Contact) == 0


def nested(levels: int) -> dict[str, Any]:
    """An object `levels` deep: {"a": {"a": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("contact", "field", "message"),
    [
        pytest.param(
            {"name": "x" * 201}, "name", "name must be at most 200 characters, got 201", id="name"
        ),
        pytest.param(
            {"attributes": {"note": "x" * 16_380}},
            "attributes",
            "attributes must be at most 16384 bytes as JSON",
            id="attributes' size",
        ),
        pytest.param(
            {"attributes": nested(5)},
            "attributes",
            "attributes may nest at most 4 levels deep",
            id="attributes' depth",
        ),
        pytest.param(
            {"attributes": {f"k{i}": i for i in range(101)}},
            "attributes",
            "attributes may hold at most 100 keys and list items",
            id="attributes' keys",
        ),
        pytest.param(
            {"attributes": {"list": list(range(100))}},
            "attributes",
            "attributes may hold at most 100 keys and list items",
            id="attributes' list items",
        ),
    ],
)
async def test_create_contact_with_input_over_a_bound_is_invalid_input(
    gql: GqlClient, session: AsyncSession, contact: dict[str, Any], field: str, message: str
) -> None:
    # when
    data = await gql.ok(CREATE_CONTACT, {"input": {"phone": "+33612345678", **contact}})

    # then
    assert data["createContact"] == {
        "__typename": "InvalidInputError",
        "message": message,
        "field": field,
    }
    assert await factories.count(session, Contact) == 0


async def test_create_contact_at_every_bound_is_kept(gql: GqlClient, session: AsyncSession) -> None:
    # given: a 200-character name; attributes 4 levels deep, with 100 keys in all, and
    # 16,384 bytes as JSON
    attributes: dict[str, Any] = {f"k{i}": i for i in range(96)}
    attributes["deep"] = nested(3)  # 3 more keys, 4 levels
    filler = 16_384 - len(orjson.dumps({**attributes, "pad": ""}))
    attributes["pad"] = "x" * filler
    assert len(orjson.dumps(attributes)) == 16_384
    variables = {"input": {"phone": "+33612345678", "name": "N" * 200, "attributes": attributes}}

    # when
    data = await gql.ok(CREATE_CONTACT, variables)

    # then
    contact = data["createContact"]["contact"]
    assert (contact["name"], contact["attributes"]) == ("N" * 200, attributes)
    assert await factories.count(session, Contact) == 1


async def test_create_contact_with_a_known_phone_is_a_duplicate_error(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    await gql.ok(CREATE_CONTACT, {"input": {"phone": "+33612345678", "name": "Ada"}})

    # when: the same number in national notation
    result = await gql(
        CREATE_CONTACT, {"input": {"phone": "06.12.34.56.78", "defaultRegion": "FR", "name": "B"}}
    )

    # then
    assert result.errors is None
    error = result.data["createContact"]
    assert error["__typename"] == "DuplicateError"
    assert (error["entity"], error["field"], error["value"]) == ("Contact", "phone", "+33612345678")
    assert await phones(session) == {"+33612345678": "Ada"}


async def test_concurrent_creates_of_one_phone_end_as_one_contact_and_one_duplicate_error(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    variables = [{"input": {"phone": "+33612345678", "name": f"N{i}"}} for i in range(4)]

    # when
    results = await asyncio.gather(*(gql(CREATE_CONTACT, v) for v in variables))

    # then
    assert all(r.errors is None for r in results)
    kinds = sorted(r.data["createContact"]["__typename"] for r in results)
    assert kinds == ["CreateContactSuccess", "DuplicateError", "DuplicateError", "DuplicateError"]
    assert await factories.count(session, Contact) == 1


async def test_create_contact_into_categories(gql: GqlClient, session: AsyncSession) -> None:
    # given
    vip = await factories.category(session, "VIP")
    await session.commit()

    # when
    data = await gql.ok(
        CREATE_CONTACT, {"input": {"phone": "+33612345678", "categoryIds": [str(vip)]}}
    )

    # then
    contact = data["createContact"]["contact"]
    assert contact["categories"] == [{"name": "VIP"}]
    assert contact["id"] == global_id("Contact", 1)
    assert await members(session, vip) == {1}


async def test_create_contact_whose_category_step_fails_leaves_no_contact(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: the contact row is inserted before the unknown category is found
    vip = await factories.category(session, "VIP")
    await session.commit()

    # when
    data = await gql.ok(
        CREATE_CONTACT, {"input": {"phone": "+33612345678", "categoryIds": [str(vip), "999"]}}
    )

    # then
    error = data["createContact"]
    assert error["__typename"] == "NotFoundError"
    assert (error["entity"], error["id"]) == ("Category", global_id("Category", 999))
    assert await factories.count(session, Contact) == 0
    assert await factories.count(session, category_contacts) == 0


async def test_second_mutation_failing_keeps_the_first(
    gql: GqlClient, session: AsyncSession
) -> None:
    # when
    data = await gql.ok(CREATE_TWO_CONTACTS)

    # then
    assert data["first"]["__typename"] == "CreateContactSuccess"
    assert data["second"] == {"__typename": "DuplicateError", "value": "+33612345678"}
    assert await phones(session) == {"+33612345678": "Ada"}


# -- updateContact ---------------------------------------------------------------------


async def test_update_contact_changes_only_the_fields_given(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    [contact_id] = await factories.contacts(session, 1)
    await session.commit()

    # when
    data = await gql.ok(
        UPDATE_CONTACT,
        {"id": str(contact_id), "input": {"phone": "07 81 00 00 01", "defaultRegion": "FR"}},
    )

    # then
    contact = data["updateContact"]["contact"]
    assert contact == {
        "id": global_id("Contact", contact_id),
        "phone": "+33781000001",
        "name": "Contact 0",
        "attributes": {"first_name": "C0"},
    }


async def test_update_contact_null_name_clears_it(gql: GqlClient, session: AsyncSession) -> None:
    # given
    [contact_id] = await factories.contacts(session, 1)
    await session.commit()

    # when
    data = await gql.ok(UPDATE_CONTACT, {"id": str(contact_id), "input": {"name": None}})

    # then
    assert data["updateContact"]["contact"]["name"] is None
    assert data["updateContact"]["contact"]["phone"] == "+33610000000"


async def test_update_contact_to_another_contacts_phone_is_a_duplicate_error(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: the unique index, not a prior check, catches it
    first, _ = await factories.contacts(session, 2)
    await session.commit()

    # when
    result = await gql(
        UPDATE_CONTACT, {"id": str(first), "input": {"phone": "+33610000001", "name": "Changed"}}
    )

    # then
    assert result.errors is None
    error = result.data["updateContact"]
    assert error["__typename"] == "DuplicateError"
    assert (error["field"], error["value"]) == ("phone", "+33610000001")
    assert await phones(session) == {"+33610000000": "Contact 0", "+33610000001": "Contact 1"}


async def test_update_contact_with_an_invalid_phone_changes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    [contact_id] = await factories.contacts(session, 1)
    await session.commit()

    # when
    data = await gql.ok(
        UPDATE_CONTACT, {"id": str(contact_id), "input": {"phone": "hello", "name": "X"}}
    )

    # then
    assert data["updateContact"]["__typename"] == "InvalidPhoneError"
    assert data["updateContact"]["phone"] == "hello"
    assert await phones(session) == {"+33610000000": "Contact 0"}


async def test_update_contact_with_a_name_over_the_maximum_changes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    [contact_id] = await factories.contacts(session, 1)
    await session.commit()

    # when
    data = await gql.ok(
        UPDATE_CONTACT,
        {"id": str(contact_id), "input": {"phone": "+33612345678", "name": "x" * 900_000}},
    )

    # then
    assert data["updateContact"] == {
        "__typename": "InvalidInputError",
        "message": "name must be at most 200 characters, got 900000",
    }
    assert await phones(session) == {"+33610000000": "Contact 0"}


async def test_update_unknown_contact_is_not_found(gql: GqlClient) -> None:
    # when
    data = await gql.ok(UPDATE_CONTACT, {"id": "404", "input": {"name": "X"}})

    # then
    assert data["updateContact"] == {
        "__typename": "NotFoundError",
        "message": "Contact 404 does not exist",
        "entity": "Contact",
        "id": global_id("Contact", 404),
    }


async def test_update_contact_with_a_malformed_id_is_a_bad_input_error(gql: GqlClient) -> None:
    # when
    result = await gql(UPDATE_CONTACT, {"id": "abc", "input": {"name": "X"}})

    # then
    assert result.errors is not None
    assert len(result.errors) == 1
    assert result.errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


# -- deleteContact ---------------------------------------------------------------------


async def test_delete_contact_removes_it_and_its_memberships(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    kept, gone = await factories.contacts(session, 2)
    vip = await factories.category(session, "VIP", members=[kept, gone])
    await session.commit()

    # when
    data = await gql.ok(DELETE_CONTACT, {"id": str(gone)})

    # then
    assert data["deleteContact"] == {
        "__typename": "DeleteContactSuccess",
        "deletedId": global_id("Contact", gone),
    }
    assert await phones(session) == {"+33610000000": "Contact 0"}
    assert await members(session, vip) == {kept}


async def test_delete_unknown_contact_is_not_found(gql: GqlClient) -> None:
    # when
    data = await gql.ok(DELETE_CONTACT, {"id": "7"})

    # then
    assert data["deleteContact"] == {
        "__typename": "NotFoundError",
        "entity": "Contact",
        "id": global_id("Contact", 7),
    }


# -- importContacts --------------------------------------------------------------------


@pytest.fixture
def patient_server(settings: Settings) -> Iterator[Server]:
    """The 10,000-row import takes seconds; a loaded machine must not hit the 10 s timeout."""
    with serve(settings.model_copy(update={"query_timeout_s": 120.0})) as running:
        yield running


async def test_import_of_the_maximum_row_count_is_one_insert_statement(
    patient_server: Server, admin_key: str, session: AsyncSession
) -> None:
    # given: 10,000 rows, 3 of them bad in different ways, 1 already known
    await factories.contacts(session, 1, start=10_000_000)  # +33620000000, i.e. french(0)
    await session.commit()
    rows: list[dict[str, Any]] = [
        {"phone": french(i), "name": f"R{i}", "attributes": {"n": i}} for i in range(10_000)
    ]
    rows[10] = {"phone": "not a phone"}
    rows[20] = {"phone": rows[19]["phone"].replace("+33", "0"), "name": "twin"}  # national twin
    rows[30] = {"phone": french(30), "attributes": "x"}

    # when
    async with httpx.AsyncClient(base_url=patient_server.url, timeout=180) as http:
        gql = GqlClient(http, admin_key)
        result = await gql(IMPORT_COUNTS, {"input": {"rows": rows, "defaultRegion": "FR"}})

    # then
    assert result.errors is None
    payload = result.data["importContacts"]
    assert payload["__typename"] == "ImportContactsSuccess"
    assert (payload["created"], payload["updated"]) == (9_996, 0)
    assert payload["errors"] == [
        {"index": 0, "phone": french(0), "reason": "ALREADY_EXISTS"},
        {"index": 10, "phone": "not a phone", "reason": "INVALID_PHONE"},
        {"index": 20, "phone": rows[20]["phone"], "reason": "DUPLICATE_IN_BATCH"},
        {"index": 30, "phone": french(30), "reason": "INVALID_ATTRIBUTES"},
    ]
    # SAVEPOINT, the one INSERT ... SELECT FROM unnest(...), RELEASE SAVEPOINT
    assert result.sql == 3
    assert await factories.count(session, Contact) == 9_997
    stored = await phones(session)
    assert stored[french(0)] == "Contact 10000000"  # skipped, not overwritten
    assert stored[french(19)] == "R19"
    assert french(30) not in stored


async def test_import_reports_rows_and_returns_the_contacts_in_input_order(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    rows = [
        {"phone": "+44 20 7946 0018", "name": "London"},
        {"phone": "0612345678", "name": "Paris", "attributes": {"city": "Paris"}},
        {"phone": "+1"},
    ]

    # when
    data = await gql.ok(IMPORT_CONTACTS, {"input": {"rows": rows, "defaultRegion": "FR"}})

    # then
    payload = data["importContacts"]
    assert payload["contacts"] == [
        {"phone": "+442079460018", "name": "London", "attributes": {}},
        {"phone": "+33612345678", "name": "Paris", "attributes": {"city": "Paris"}},
    ]
    assert payload["errors"] == [
        {
            "index": 2,
            "phone": "+1",
            "reason": "INVALID_PHONE",
            "message": "'+1' is not a valid phone number",
        }
    ]
    assert await factories.count(session, Contact) == 2


async def test_import_reports_rows_over_a_bound_and_keeps_the_others(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    rows = [
        {"phone": french(0), "name": "x" * 201},
        {"phone": french(1), "attributes": nested(5)},
        {"phone": french(2), "name": "Kept", "attributes": {"city": "Paris"}},
    ]

    # when
    data = await gql.ok(IMPORT_CONTACTS, {"input": {"rows": rows}})

    # then
    payload = data["importContacts"]
    assert (payload["created"], payload["updated"]) == (1, 0)
    assert payload["errors"] == [
        {
            "index": 0,
            "phone": french(0),
            "reason": "INVALID_NAME",
            "message": "name must be at most 200 characters, got 201",
        },
        {
            "index": 1,
            "phone": french(1),
            "reason": "INVALID_ATTRIBUTES",
            "message": "attributes may nest at most 4 levels deep",
        },
    ]
    assert await phones(session) == {french(2): "Kept"}


@dataclass(frozen=True)
class Submitted:
    """A row as `ImportInput` reads it."""

    phone: str
    name: str | None = None
    attributes: Any = None


async def test_import_lets_other_tasks_run_while_it_parses_phones(session: AsyncSession) -> None:
    # given: 10,000 rows, none valid, so the import has no statement to wait for
    rows = [Submitted(phone=f"not a phone {i}") for i in range(10_000)]

    # when: another task counts its turns
    async with turns_taken() as turns:
        result = await ContactService(session, 10_000).import_rows(rows, "FR")
        during = turns()

    # then: the other task ran once between each two chunks of rows
    assert during == 10_000 // IMPORT_CHUNK - 1
    assert len(result.errors) == 10_000
    assert {e.reason for e in result.errors} == {ImportRowErrorReason.INVALID_PHONE}
    assert await factories.count(session, Contact) == 0


async def test_import_over_the_maximum_is_refused_whole(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    rows = [{"phone": french(i)} for i in range(10_001)]

    # when
    data = await gql.ok(IMPORT_CONTACTS, {"input": {"rows": rows}})

    # then
    assert data["importContacts"]["__typename"] == "InvalidInputError"
    assert data["importContacts"]["field"] == "rows"
    assert "10000" in data["importContacts"]["message"]
    assert await factories.count(session, Contact) == 0


async def test_import_into_categories(gql: GqlClient, session: AsyncSession) -> None:
    # given
    vip = await factories.category(session, "VIP")
    await session.commit()
    rows = [{"phone": french(i)} for i in range(3)]

    # when
    result = await gql(IMPORT_COUNTS, {"input": {"rows": rows, "categoryIds": [str(vip)]}})

    # then
    assert result.errors is None
    assert result.data["importContacts"]["created"] == 3
    # SAVEPOINT, INSERT contacts, INSERT memberships, RELEASE SAVEPOINT
    assert result.sql == 4
    assert len(await members(session, vip)) == 3


async def test_import_into_an_unknown_category_writes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    vip = await factories.category(session, "VIP")
    await session.commit()
    rows = [{"phone": french(i)} for i in range(3)]

    # when
    data = await gql.ok(IMPORT_CONTACTS, {"input": {"rows": rows, "categoryIds": [str(vip), "9"]}})

    # then
    assert data["importContacts"] == {
        "__typename": "NotFoundError",
        "entity": "Category",
        "id": global_id("Category", 9),
    }
    assert await factories.count(session, Contact) == 0
    assert await factories.count(session, category_contacts) == 0


async def test_import_with_update_existing_updates_known_phones(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: +33610000000, named "Contact 0", attributes {"first_name": "C0"}
    await factories.contacts(session, 1)
    await session.commit()
    rows = [
        {"phone": "+33610000000", "attributes": {"city": "Lyon"}},
        {"phone": french(1), "name": "New"},
    ]

    # when
    data = await gql.ok(IMPORT_CONTACTS, {"input": {"rows": rows, "updateExisting": True}})

    # then
    payload = data["importContacts"]
    assert (payload["created"], payload["updated"], payload["errors"]) == (1, 1, [])
    assert payload["contacts"][0] == {
        "phone": "+33610000000",
        "name": "Contact 0",
        "attributes": {"first_name": "C0", "city": "Lyon"},
    }
    assert await factories.count(session, Contact) == 2


async def test_import_with_an_unknown_region_is_invalid_input(
    gql: GqlClient, session: AsyncSession
) -> None:
    # when
    data = await gql.ok(
        IMPORT_CONTACTS, {"input": {"rows": [{"phone": "0612345678"}], "defaultRegion": "ZZZ"}}
    )

    # then
    assert data["importContacts"]["__typename"] == "InvalidInputError"
    assert data["importContacts"]["field"] == "defaultRegion"
    assert await factories.count(session, Contact) == 0


# -- memberships -----------------------------------------------------------------------


async def test_add_contacts_to_category_counts_new_memberships_only(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    a, b, c = await factories.contacts(session, 3)
    vip = await factories.category(session, "VIP", members=[a])
    await session.commit()

    # when
    data = await gql.ok(
        ADD_TO_CATEGORY, {"categoryId": str(vip), "contactIds": [str(a), str(b), str(c)]}
    )

    # then
    assert data["addContactsToCategory"] == {
        "__typename": "AddContactsToCategorySuccess",
        "added": 2,
        "category": {"id": global_id("Category", vip), "name": "VIP", "contactCount": 3},
    }
    assert await members(session, vip) == {a, b, c}


async def test_add_unknown_contact_to_category_adds_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    [a] = await factories.contacts(session, 1)
    vip = await factories.category(session, "VIP")
    await session.commit()

    # when
    data = await gql.ok(ADD_TO_CATEGORY, {"categoryId": str(vip), "contactIds": [str(a), "999"]})

    # then
    assert data["addContactsToCategory"] == {
        "__typename": "NotFoundError",
        "entity": "Contact",
        "id": global_id("Contact", 999),
    }
    assert await members(session, vip) == set()


async def test_add_contacts_to_unknown_category_is_not_found(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    [a] = await factories.contacts(session, 1)
    await session.commit()

    # when
    data = await gql.ok(ADD_TO_CATEGORY, {"categoryId": "55", "contactIds": [str(a)]})

    # then
    assert data["addContactsToCategory"] == {
        "__typename": "NotFoundError",
        "entity": "Category",
        "id": global_id("Category", 55),
    }
    assert await factories.count(session, category_contacts) == 0


async def test_remove_contacts_from_category_keeps_the_contacts(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given
    a, b, c = await factories.contacts(session, 3)
    vip = await factories.category(session, "VIP", members=[a, b])
    await session.commit()

    # when: c was never a member
    data = await gql.ok(
        REMOVE_FROM_CATEGORY, {"categoryId": str(vip), "contactIds": [str(b), str(c)]}
    )

    # then
    assert data["removeContactsFromCategory"] == {
        "__typename": "RemoveContactsFromCategorySuccess",
        "removed": 1,
        "category": {"id": global_id("Category", vip), "contactCount": 1},
    }
    assert await members(session, vip) == {a}
    assert await factories.count(session, Contact) == 3


async def test_remove_contacts_from_unknown_category_is_not_found(gql: GqlClient) -> None:
    # when
    data = await gql.ok(REMOVE_FROM_CATEGORY, {"categoryId": "8", "contactIds": []})

    # then
    assert data["removeContactsFromCategory"] == {
        "__typename": "NotFoundError",
        "entity": "Category",
        "id": global_id("Category", 8),
    }


async def test_membership_change_invalidates_the_cached_contact_count(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: the count is cached (the second read sends no SQL)
    [a] = await factories.contacts(session, 1)
    vip = await factories.category(session, "VIP")
    await session.commit()
    await gql.ok(CONTACT_COUNT, {"id": str(vip)})
    cached = await gql(CONTACT_COUNT, {"id": str(vip)})
    assert (cached.data, cached.sql) == ({"category": {"contactCount": 0}}, 0)

    # when
    await gql.ok(ADD_TO_CATEGORY, {"categoryId": str(vip), "contactIds": [str(a)]})

    # then
    assert await gql.ok(CONTACT_COUNT, {"id": str(vip)}) == {"category": {"contactCount": 1}}
