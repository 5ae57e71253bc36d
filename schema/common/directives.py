"""Schema directives that declare a bound in schema.graphql, where clients read it, and that
the shape limits' walk (schema/limits/shape.py) enforces before validation and execution."""

from __future__ import annotations

import strawberry
from graphql import GraphQLArgument
from strawberry.schema_directive import Location
from strawberry.types.arguments import StrawberryArgument

# Strawberry's back-reference on the graphql-core objects it builds (here a GraphQLArgument).
_DEFINITION = "strawberry-definition"


@strawberry.schema_directive(
    locations=[Location.ARGUMENT_DEFINITION],
    description="The most characters this String argument (each String, for a list) takes: "
    "a longer value is refused with BAD_USER_INPUT before the operation runs.",
)
class MaxLength:
    value: int


def max_length(argument: GraphQLArgument) -> int | None:
    """The bound an argument declares with `@maxLength`; None when it declares none."""
    definition = argument.extensions.get(_DEFINITION)
    if isinstance(definition, StrawberryArgument):
        for directive in definition.directives:
            if isinstance(directive, MaxLength):
                return directive.value
    return None
