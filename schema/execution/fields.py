"""Which fields are plain: one definition for the compiled plans and the fast executor alike."""

from __future__ import annotations

from graphql import GraphQLField
from strawberry.types.field import StrawberryField

from schema.common.selection import reads_attribute

STRAWBERRY_FIELD = "strawberry-definition"  # Strawberry's back-reference on a GraphQLField


def strawberry_field(field_def: GraphQLField) -> StrawberryField | None:
    """The Strawberry field a GraphQL field was built from (None for introspection's)."""
    definition = field_def.extensions.get(STRAWBERRY_FIELD)
    return definition if isinstance(definition, StrawberryField) else None


def plain_attribute(field_def: GraphQLField) -> str | None:
    """The attribute a field reads when it is plain: Strawberry's default resolver with no
    resolver, extension or argument (what `getattr(source, name)` answers)."""
    definition = strawberry_field(field_def)
    if (
        definition is not None
        and definition.is_basic_field
        and not definition.arguments
        and not field_def.args
        and reads_attribute(definition.default_resolver)
        and definition.python_name.isidentifier()
    ):
        return definition.python_name
    return None
