"""`BigInt`: whole numbers past Int's 32 bits, exact in every client (schema/common/scalars.py)."""

from __future__ import annotations

import pytest
from graphql import GraphQLError, parse_value

from schema.common.scalars import (
    BIG_INT_MAX,
    parse_big_int,
    parse_big_int_literal,
    serialize_big_int,
)


@pytest.mark.parametrize("value", [0, -1, 2**31, BIG_INT_MAX, -BIG_INT_MAX])
def test_a_whole_number_within_javascripts_exact_range_passes_unchanged(value: int) -> None:
    assert serialize_big_int(value) == value
    assert parse_big_int(value) == value
    assert parse_big_int_literal(parse_value(str(value))) == value


@pytest.mark.parametrize("value", [BIG_INT_MAX + 1, -BIG_INT_MAX - 1, True, 1.5, "1", None])
def test_anything_else_is_refused_in_graphql_cores_words(value: object) -> None:
    with pytest.raises(GraphQLError, match=r"^BigInt cannot represent"):
        serialize_big_int(value)
    with pytest.raises(GraphQLError, match=r"^BigInt cannot represent"):
        parse_big_int(value)


def test_an_integral_float_is_taken_as_json_sends_it() -> None:
    assert parse_big_int(42.0) == 42


@pytest.mark.parametrize("literal", ['"1"', "1.0", "true", str(BIG_INT_MAX + 1)])
def test_a_literal_that_is_no_such_number_is_refused_where_it_stands(literal: str) -> None:
    with pytest.raises(GraphQLError, match=r"^BigInt cannot represent") as refused:
        parse_big_int_literal(parse_value(literal))
    assert refused.value.nodes
