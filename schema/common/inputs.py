"""Input types that arrive by the thousand, built straight from graphql-core's values.

Strawberry converts an input object field by field, resolving each field's type again for
every value (about 50 µs a row), so the conversion of `importContacts`'s 10,000 rows held
the event loop longer than the import itself. `built_directly` gives such a type the
`from_input` hook Strawberry offers integrations (`StrawberryObjectDefinition.from_input`):
leaves pass through as graphql-core coerced them, lists of leaves are copied, and any other
field is converted by Strawberry (`InputContext.convert`). tests/test_inputs.py holds the
result equal to Strawberry's own conversion.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from strawberry.relay import GlobalID
from strawberry.types.arguments import InputContext
from strawberry.types.base import (
    StrawberryList,
    StrawberryObjectDefinition,
    StrawberryOptional,
    StrawberryType,
    get_object_definition,
)
from strawberry.types.enum import has_enum_definition

T = TypeVar("T", bound=type)

# How a field's value becomes the Python value.
_LEAF, _LEAF_LIST, _CONVERTED = 0, 1, 2
_Field = tuple[str, str, int, "StrawberryType | type"]


def built_directly(cls: T) -> T:
    """Builds the input type `cls` without Strawberry's per-field type resolution."""
    definition = get_object_definition(cls, strict=True)
    assert definition.is_input
    assert definition.from_input is None
    fields: list[_Field] | None = None
    unset = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is dataclasses.MISSING
        and field.default_factory is dataclasses.MISSING
    }

    def from_input(target: type, value: Mapping[str, Any], context: InputContext) -> Any:
        nonlocal fields
        if fields is None:
            fields = _fields(definition, context)
        kwargs: dict[str, object] = dict(
            unset
        )  # Strawberry's implicit None for fields with no default
        for graphql_name, python_name, kind, type_ in fields:
            if graphql_name not in value:
                continue
            item = value[graphql_name]
            if item is None or kind == _LEAF:
                kwargs[python_name] = item
            elif kind == _LEAF_LIST:
                kwargs[python_name] = list(item)  # graphql-core shares defaults across requests
            else:
                kwargs[python_name] = context.convert(item, type_, graphql_name)
        return target(**kwargs)

    definition.from_input = from_input
    return cls


def _fields(definition: StrawberryObjectDefinition, context: InputContext) -> list[_Field]:
    found = []
    for field in definition.fields:
        type_ = field.resolve_type(type_definition=definition)
        inner = type_.of_type if isinstance(type_, StrawberryOptional) else type_
        if _leaf(inner, context):
            kind = _LEAF
        elif isinstance(inner, StrawberryList) and _leaf(_optional_of(inner.of_type), context):
            kind = _LEAF_LIST
        else:
            kind = _CONVERTED
        name = context.config.name_converter.from_field(field)
        found.append((name, field.python_name, kind, type_))
    return found


def _optional_of(type_: StrawberryType | type) -> StrawberryType | type:
    return type_.of_type if isinstance(type_, StrawberryOptional) else type_


def _leaf(type_: StrawberryType | type, context: InputContext) -> bool:
    """Whether graphql-core's coerced value is already the Python value: scalars (their
    `parse_value` ran) and enums (graphql-core maps names to members), but not `GlobalID`,
    which Strawberry decodes."""
    if isinstance(type_, StrawberryType) or type_ is GlobalID:
        return False
    return type_ in context.scalar_registry or has_enum_definition(type_)
