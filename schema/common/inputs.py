"""Input types that arrive by the thousand, built straight from graphql-core's values.

Strawberry converts an input object field by field, resolving each field's type again for
every value (about 50 µs a row), so the conversion of `importContacts`'s 10,000 rows held
the event loop longer than the import itself. `built_directly` gives such a type the
`from_input` hook Strawberry offers integrations (`StrawberryObjectDefinition.from_input`):
leaves pass through as graphql-core coerced them, lists of leaves are copied, and any other
field is converted by Strawberry (`InputContext.convert`).

Argument conversion runs in one piece, before the resolver can let other requests in, so
the list that holds the rows is built here too: a list of a type built directly whose
fields are all leaves under their own names ("plain") is built item by item from
graphql-core's dicts, without Strawberry's dispatch per item (10,000 rows: 4 ms, against
46). tests/test_inputs.py holds the result equal to Strawberry's own conversion.
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
_LEAF, _LEAF_LIST, _PLAIN_LIST, _CONVERTED = 0, 1, 2, 3
# (GraphQL name, Python name, kind, type; for a _PLAIN_LIST, the items' builder)
_Field = tuple[str, str, int, "StrawberryType | type", "_Builder | None"]


class _Builder:
    """A type's `from_input` hook; its fields are sorted out on the first call, which
    brings the schema's scalars and name converter."""

    def __init__(self, cls: type, definition: StrawberryObjectDefinition) -> None:
        self.cls = cls
        self.definition = definition
        # Strawberry's implicit None for the fields with no default
        self.unset = {
            field.python_name: None
            for field in definition.fields
            if field.default_value is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        }
        self.fields: list[_Field] | None = None
        self.plain = False  # every field a leaf under its own name

    def prepare(self, context: InputContext) -> list[_Field]:
        if self.fields is None:
            self.fields = _fields(self.definition, context)
            self.plain = all(
                kind == _LEAF and name == python_name
                for name, python_name, kind, _, _ in self.fields
            )
        return self.fields

    def plain_item(self, value: Mapping[str, Any] | None) -> Any:
        """One item of a plain list: graphql-core's dict holds the arguments already."""
        return None if value is None else self.cls(**{**self.unset, **value})

    def __call__(self, target: type, value: Mapping[str, Any], context: InputContext) -> Any:
        fields = self.prepare(context)
        if self.plain:
            return self.plain_item(value)
        kwargs: dict[str, object] = dict(self.unset)
        for graphql_name, python_name, kind, type_, items in fields:
            if graphql_name not in value:
                continue
            item = value[graphql_name]
            if item is None or kind == _LEAF:
                kwargs[python_name] = item
            elif kind == _LEAF_LIST:
                kwargs[python_name] = list(item)  # graphql-core shares defaults across requests
            elif items is not None:  # _PLAIN_LIST
                kwargs[python_name] = [items.plain_item(i) for i in item]
            else:
                kwargs[python_name] = context.convert(item, type_, graphql_name)
        return target(**kwargs)


def built_directly(cls: T) -> T:
    """Builds the input type `cls` without Strawberry's per-field type resolution."""
    definition = get_object_definition(cls, strict=True)
    assert definition.is_input
    assert definition.from_input is None
    definition.from_input = _Builder(cls, definition)
    return cls


def _fields(definition: StrawberryObjectDefinition, context: InputContext) -> list[_Field]:
    found = []
    for field in definition.fields:
        type_ = field.resolve_type(type_definition=definition)
        inner = _optional_of(type_)
        items = None
        if _leaf(inner, context):
            kind = _LEAF
        elif isinstance(inner, StrawberryList) and _leaf(_optional_of(inner.of_type), context):
            kind = _LEAF_LIST
        elif isinstance(inner, StrawberryList) and (items := _plain(inner.of_type, context)):
            kind = _PLAIN_LIST
        else:
            kind = _CONVERTED
        name = context.config.name_converter.from_field(field)
        found.append((name, field.python_name, kind, type_, items))
    return found


def _plain(type_: StrawberryType | type, context: InputContext) -> _Builder | None:
    """The builder of a plain type built directly, whose items need no conversion at all."""
    inner = _optional_of(type_)
    if not isinstance(inner, type):
        return None
    definition = get_object_definition(inner)
    builder = None if definition is None else definition.from_input
    if not isinstance(builder, _Builder):
        return None
    builder.prepare(context)
    return builder if builder.plain else None


def _optional_of(type_: StrawberryType | type) -> StrawberryType | type:
    return type_.of_type if isinstance(type_, StrawberryOptional) else type_


def _leaf(type_: StrawberryType | type, context: InputContext) -> bool:
    """Whether graphql-core's coerced value is already the Python value: scalars (their
    `parse_value` ran) and enums (graphql-core maps names to members), but not `GlobalID`,
    which Strawberry decodes."""
    if isinstance(type_, StrawberryType) or type_ is GlobalID:
        return False
    return type_ in context.scalar_registry or has_enum_definition(type_)
