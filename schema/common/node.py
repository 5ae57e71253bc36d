"""The `Node` interface: every object with an identity, fetched again by `node(id:)`."""

from __future__ import annotations

from typing import Any, ClassVar

import strawberry
from graphql import GraphQLObjectType
from strawberry.types.base import StrawberryObjectDefinition

from schema.common.ids import Encoder
from schema.common.scalars import BigInt

DEFINITION = "strawberry-definition"  # Strawberry's back-reference on a GraphQL type


@strawberry.interface(
    description="An object with a global id: `node(id:)` and `nodes(ids:)` fetch it again, "
    "and client caches (Relay, Apollo, urql) can key it by that id alone."
)
class Node:
    # Each type's encoder of its keys (schema/common/ids.py), for whatever builds it
    # (loaders/base.py's row builders read it off the class).
    node_id: ClassVar[Encoder]

    id: strawberry.ID = strawberry.field(
        description='Unique across every type: base64 of "Type:key" (e.g. "Campaign:42"). '
        "Arguments also take the numeric key, `databaseId`."
    )


def database_id_field() -> Any:
    """A node's `databaseId`: its 64-bit key, a `BigInt` (schema/common/scalars.py)."""
    return strawberry.field(
        description="The numeric key, what `id` was before global ids; id arguments take it too.",
        graphql_type=BigInt,
    )


def checked_class(type_: GraphQLObjectType) -> type | None:
    """The class an object of `type_` has when the type checks its values with Strawberry's
    own check (`is_type_of`, on a type implementing an interface: Node's); the fast paths
    complete objects of exactly that class and leave any other to the standard path's
    check. None: the type checks nothing. ValueError: a check of the type's own."""
    if type_.is_type_of is None:
        return None
    definition = type_.extensions.get(DEFINITION)
    if not isinstance(definition, StrawberryObjectDefinition) or definition.is_type_of:
        raise ValueError(f"{type_.name} checks its values (is_type_of)")
    return definition.origin
