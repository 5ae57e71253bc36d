"""Which fields are plain: one definition for the compiled plans and the fast executor alike,
and the shape of a plain field's type, planned once per schema field."""

from __future__ import annotations

from typing import NamedTuple

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLID,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLString,
)
from strawberry.types.field import StrawberryField

from schema.common.node import checked_class
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


# Kinds of a planned type node.
LEAF, OBJECT, LIST = 0, 1, 2


class TypeNode(NamedTuple):
    """One level of a field's type: `[Contact!]` is LIST(nullable) of OBJECT(non-null)."""

    type_: GraphQLOutputType  # this level's GraphQL type, wrappers included
    non_null: bool
    kind: int
    leaf: GraphQLLeafType | None = None
    object_type: GraphQLObjectType | None = None
    item: TypeNode | None = None
    text: bool = False  # String or ID: a `str` value serializes to itself
    checked: type | None = None  # the class an object must have when its type checks it


class FieldPlan(NamedTuple):
    attribute: str
    node: TypeNode


_field_plans: dict[tuple[str, str], FieldPlan | None] = {}


def type_node(type_: GraphQLOutputType) -> TypeNode | None:
    non_null = isinstance(type_, GraphQLNonNull)
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    if isinstance(inner, GraphQLList):
        item = type_node(inner.of_type)
        return None if item is None else TypeNode(type_, non_null, LIST, item=item)
    if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
        text = inner is GraphQLString or inner is GraphQLID
        return TypeNode(type_, non_null, LEAF, leaf=inner, text=text)
    if isinstance(inner, GraphQLObjectType):
        try:
            checked = checked_class(inner)
        except ValueError:
            return None
        return TypeNode(type_, non_null, OBJECT, object_type=inner, checked=checked)
    return None  # unions, interfaces


def plan_field(parent_type: GraphQLObjectType, name: str) -> FieldPlan | None:
    key = (parent_type.name, name)
    if key in _field_plans:
        return _field_plans[key]
    plan = None
    field_def = parent_type.fields.get(name)
    attribute = plain_attribute(field_def) if field_def is not None else None
    if field_def is not None and attribute is not None:
        node = type_node(field_def.type)
        if node is not None:
            plan = FieldPlan(attribute, node)
    _field_plans[key] = plan
    return plan
