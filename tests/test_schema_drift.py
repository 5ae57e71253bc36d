"""The committed schema.graphql is the API contract: any change to it shows up in review."""

from __future__ import annotations

from strawberry.printer import print_schema

from schema.export import PATH
from schema.schema import schema

EXPORT = "python -m schema.export"


def test_committed_schema_matches_code() -> None:
    committed = PATH.read_text()
    assert committed.strip() == print_schema(schema).strip(), f"schema drifted; run: {EXPORT}"
