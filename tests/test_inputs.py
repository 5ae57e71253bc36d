"""Input types built directly from graphql-core's values (schema/common/inputs.py) equal what
Strawberry's own conversion builds, field for field, lists of them too, and through the API."""

from __future__ import annotations

from typing import Any

import pytest
from strawberry.types.arguments import convert_argument
from strawberry.types.base import get_object_definition

from schema.contacts.mutations.import_contacts import ContactImportRow, ImportContactsInput
from schema.schema import schema
from tests.conftest import GqlClient

ROWS: list[dict[str, Any]] = [
    {"phone": "+33612345678"},
    {"phone": "+33612345678", "name": "Ada", "attributes": {"city": "Lyon", "tags": [1, 2]}},
    {"phone": "0612345678", "name": None, "attributes": None},
    {"phone": "+33612345678", "attributes": {"nested": {"deep": [{"x": None}]}}},
]


def _convert(value: dict[str, Any], type_: type = ContactImportRow) -> Any:
    return convert_argument(value, type_, schema.schema_converter.scalar_registry, schema.config)


@pytest.mark.parametrize("row", ROWS)
def test_a_row_built_directly_equals_strawberrys_conversion(row: dict[str, Any]) -> None:
    definition = get_object_definition(ContactImportRow, strict=True)
    hook = definition.from_input
    assert hook is not None  # the type is built directly
    direct = _convert(row)
    definition.from_input = None
    try:
        standard = _convert(row)
    finally:
        definition.from_input = hook
    assert type(direct) is ContactImportRow
    assert direct == standard


@pytest.mark.parametrize(
    "value",
    [
        {"rows": ROWS, "categoryIds": ["Q2F0ZWdvcnk6MQ=="], "updateExisting": True},
        {"rows": [], "defaultRegion": "FR", "categoryIds": [], "updateExisting": False},
    ],
)
def test_an_import_built_directly_equals_strawberrys_conversion(value: dict[str, Any]) -> None:
    """The input and its rows, built as one plain list."""
    definitions = [
        get_object_definition(t, strict=True) for t in (ImportContactsInput, ContactImportRow)
    ]
    hooks = [d.from_input for d in definitions]
    assert all(hook is not None for hook in hooks)  # both built directly
    direct = _convert(value, ImportContactsInput)
    for definition in definitions:
        definition.from_input = None
    try:
        standard = _convert(value, ImportContactsInput)
    finally:
        for definition, hook in zip(definitions, hooks, strict=True):
            definition.from_input = hook
    assert type(direct) is ImportContactsInput
    assert [type(row) for row in direct.rows] == [ContactImportRow] * len(value["rows"])
    assert direct == standard
    assert direct.category_ids is not value["categoryIds"]  # a list of its own


@pytest.mark.asyncio
async def test_imported_rows_keep_every_field(gql: GqlClient) -> None:
    """Given rows with and without a name and attributes, when imported, then each contact
    has what its row said."""
    result = await gql.ok(
        """mutation ($rows: [ContactImportRow!]!) { importContacts(input: {rows: $rows}) {
            ... on ImportContactsSuccess { contacts { phone name attributes } } } }""",
        {
            "rows": [
                {"phone": "+33612345671", "name": "Ada", "attributes": {"city": "Lyon"}},
                {"phone": "+33612345672"},
            ]
        },
    )
    assert result["importContacts"]["contacts"] == [
        {"phone": "+33612345671", "name": "Ada", "attributes": {"city": "Lyon"}},
        {"phone": "+33612345672", "name": None, "attributes": {}},
    ]
