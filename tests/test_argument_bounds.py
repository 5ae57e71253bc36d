"""A String argument's declared `@maxLength`, read from the schema and enforced by the shape
limits' walk: on the value, on each item of a list, not inside an input object (whose fields
a mutation refuses with its typed errors); a refusal says whether a variable's value or the
document's own text was refused."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
import strawberry
from graphql import parse

from app.compat import graphql_schema
from app.config import Settings
from schema.common.directives import MaxLength, max_length
from schema.limits import check_measure, measure_operation
from schema.limits.errors import BadArgumentError

SHORT = strawberry.argument(directives=[MaxLength(value=3)])


@strawberry.input
class Note:
    text: str


@strawberry.type
class Query:
    @strawberry.field
    def echo(self, text: Annotated[str | None, SHORT] = None, free: str | None = None) -> str:
        return text or free or ""

    @strawberry.field
    def tags(self, values: Annotated[list[str], SHORT]) -> int:
        return len(values)

    @strawberry.field
    def note(self, note: Annotated[Note, SHORT]) -> str:
        return note.text


SCHEMA = graphql_schema(strawberry.Schema(query=Query))


def refusal(document: str, variables: dict[str, Any], settings: Settings) -> Any:
    measure = measure_operation(SCHEMA, parse(document), None, variables, settings)
    assert measure is not None
    error = check_measure(measure, settings)
    return None if error is None else (error.message, error.extensions)


def test_the_bound_is_read_from_the_argument_definition() -> None:
    args = SCHEMA.query_type.fields["echo"].args  # type: ignore[union-attr]
    assert (max_length(args["text"]), max_length(args["free"])) == (3, None)


@pytest.mark.parametrize(
    ("document", "variables", "argument", "length"),
    [
        pytest.param('{ echo(text: "abcd") }', {}, "text", 4, id="literal"),
        pytest.param("query($t: String) { echo(text: $t) }", {"t": "abcde"}, "text", 5, id="var"),
        pytest.param(
            'query($t: String = "abcd") { echo(text: $t) }', {}, "text", 4, id="declared default"
        ),
        pytest.param('{ tags(values: ["ab", "abcd"]) }', {}, "values[1]", 4, id="list item"),
        pytest.param('{ tags(values: "abcd") }', {}, "values", 4, id="one item for a list"),
    ],
)
def test_a_value_over_the_bound_is_refused_naming_the_argument(
    settings: Settings, document: str, variables: dict[str, Any], argument: str, length: int
) -> None:
    assert refusal(document, variables, settings) == (
        f"{argument} must be at most 3 characters, got {length}",
        {"code": "BAD_USER_INPUT", "argument": argument},
    )


@pytest.mark.parametrize(
    "document",
    [
        '{ echo(text: "abc") }',
        '{ echo(free: "abcdefgh") }',
        '{ tags(values: ["abc", ""]) }',
        '{ note(note: {text: "abcdefgh"}) }',
    ],
)
def test_values_within_the_bound_or_unbounded_pass(settings: Settings, document: str) -> None:
    assert refusal(document, {}, settings) is None


def test_an_over_long_value_is_refused_for_its_length_before_its_nul(settings: Settings) -> None:
    refused = refusal('{ echo(text: "ab\\u0000cd") }', {}, settings)
    assert refused == (
        "text must be at most 3 characters, got 5",
        {"code": "BAD_USER_INPUT", "argument": "text"},
    )


@pytest.mark.parametrize(
    ("document", "variables", "in_variables"),
    [
        pytest.param('{ echo(text: "abcd") }', {}, False, id="literal"),
        pytest.param("query($t: String) { echo(text: $t) }", {"t": "abcd"}, True, id="variable"),
    ],
)
def test_a_refusal_tells_a_variables_value_from_the_documents_text(
    settings: Settings, document: str, variables: dict[str, Any], in_variables: bool
) -> None:
    measure = measure_operation(SCHEMA, parse(document), None, variables, settings)
    assert measure is not None
    error = check_measure(measure, settings)
    assert isinstance(error, BadArgumentError)
    assert error.in_variables is in_variables
