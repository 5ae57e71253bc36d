"""How a plan serializes a leaf its generated code does not inline: the scalar's or the
enum's own serialization, with a refusal (or a null in a non-null place) as a `Bail`."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

from graphql import GraphQLEnumType, GraphQLScalarType
from graphql.pyutils import Undefined

from schema.execution.plans.calls import Bail


def scalar_leaf(type_: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """`complete_leaf_value`, with a refusal (or a null in a non-null place) as a Bail."""
    coerce_output = type_.coerce_output_value

    def coerce(value: Any) -> Any:
        if value is None:
            raise Bail
        coerced = coerce_output(value)
        if coerced is None or coerced is Undefined:
            raise Bail
        return coerced

    return coerce


def enum_leaf(type_: GraphQLEnumType, memo: dict[tuple[type, Any], Any]) -> Callable[[Any], Any]:
    """An enum's serialization, remembered per value and its class: members are
    singletons, and rows from the driver hold the members' `str` values."""
    coerce = scalar_leaf(type_)

    def serialize(value: Any) -> Any:
        coerced = coerce(value)
        if isinstance(value, Enum | str) and len(memo) < 1000:
            memo[(value.__class__, value)] = coerced
        return coerced

    return serialize
