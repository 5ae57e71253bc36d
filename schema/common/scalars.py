"""Scalars whose refusals speak as graphql-core's own do.

Strawberry's DateTime refuses a value that is not a string with its Python `str` in
double quotes (`"[None]"`), which no rewording into JSON can reach (schema/masking.py
leaves quoted text alone). This one words a refusal as graphql-core words one of its
built-in scalars (`String cannot represent a non string value: [null]`), with the value
as graphql-core's `inspect` shows it, so the client reads it in JSON's words.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from graphql import GraphQLError, ValueNode, value_from_ast_untyped
from graphql.pyutils import inspect

EXAMPLE = "2026-12-06T09:30:00+01:00"


def parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise GraphQLError(f"DateTime cannot represent a non string value: {inspect(value)}")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise GraphQLError(
            f"DateTime cannot represent value: {inspect(value)} (ISO 8601, e.g. {EXAMPLE})"
        ) from None


def parse_datetime_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> datetime:
    """A literal in the document: refused at validation, pointing at the value (as
    graphql-core's own scalars do), so it is a request error rather than an execution one."""
    try:
        return parse_datetime(value_from_ast_untyped(node, variables))
    except GraphQLError as error:
        raise GraphQLError(error.message, node) from None


DATETIME = strawberry.scalar(
    name="DateTime",
    description="Date with time (isoformat)",
    serialize=datetime.isoformat,
    parse_value=parse_datetime,
    parse_literal=parse_datetime_literal,
)
