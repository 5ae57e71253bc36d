"""Input types built directly from graphql-core's values (schema/common/inputs.py) equal what
Strawberry's own conversion builds, field for field, and through the API."""

from __future__ import annotations

from typing import Any

import pytest
from strawberry.types.arguments import convert_argument
from strawberry.types.base import get_object_definition

from schema.contacts.mutations.import_contacts import ContactImportRow
from schema.schema import schema
from tests.conftest import GqlClient

ROWS: list[dict[str, Any]] = [
    {"phone": "+33612345678"},
    {"phone": "+33612345678", "name": "Ada", "attributes": {"city": "Lyon", "tags": [1, 2]}},
    {"phone": "0612345678", "name": None, "attributes": None},
    {"phone": "+33612345678", "attributes": {"nested": {"deep": [{"x": None}]}}},
]


def _convert(value: dict[str, Any]) -> object:
    return convert_argument(
        value, ContactImportRow, schema.schema_converter.scalar_registry, schema.config
    )


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
