"""Scalars whose refusals speak as graphql-core's own do, and a `BigInt` for 64-bit keys.

Strawberry's DateTime refuses a value that is not a string with its Python `str` in
double quotes (`"[None]"`), which no rewording into JSON can reach (schema/masking.py
leaves quoted text alone). This one words a refusal as graphql-core words one of its
built-in scalars (`String cannot represent a non string value: [null]`), with the value
as graphql-core's `inspect` shows it, so the client reads it in JSON's words.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NewType

import strawberry
from graphql import GraphQLError, IntValueNode, ValueNode, value_from_ast_untyped
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


# JavaScript's Number.MAX_SAFE_INTEGER: the largest whole number every client reads exactly.
BIG_INT_MAX = 2**53 - 1


def serialize_big_int(value: object) -> int:
    if value.__class__ is not int or not -BIG_INT_MAX <= value <= BIG_INT_MAX:
        raise GraphQLError(f"BigInt cannot represent value: {inspect(value)}")
    return value


def parse_big_int(value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON's 42.0, as graphql-core's Int takes it
    if value.__class__ is not int:
        raise GraphQLError(f"BigInt cannot represent non-integer value: {inspect(value)}")
    return serialize_big_int(value)


def parse_big_int_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> int:
    if not isinstance(node, IntValueNode):
        raise GraphQLError(f"BigInt cannot represent non-integer value: {inspect(node)}", node)
    try:
        return serialize_big_int(int(node.value))
    except GraphQLError as error:
        raise GraphQLError(error.message, node) from None


# Keys come from 64-bit sequences: a message table passes Int's 2^31 - 1 long before its
# sequence runs out, and an `Int!` key past it would null the whole page it is on.
BigInt = NewType("BigInt", int)  # a field's `graphql_type`; the schema maps it to BIG_INT
BIG_INT = strawberry.scalar(
    name="BigInt",
    description=(
        "A whole number past Int's 32 bits, as a JSON number: exact up to 2^53 - 1 "
        "(JavaScript's Number.MAX_SAFE_INTEGER); a value beyond is an error."
    ),
    serialize=serialize_big_int,
    parse_value=parse_big_int,
    parse_literal=parse_big_int_literal,
)
