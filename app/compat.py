"""The library internals Herald relies on where the library offers no public way, each in one
place, with why; tests/test_compat.py fails when a library upgrade changes one of them.

Strawberry is imported only inside the functions that need it: workers import this module
for the broker and never load Strawberry (over a second of start-up).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dramatiq.brokers.redis import _RedisConsumer

if TYPE_CHECKING:
    from graphql import FieldNode, GraphQLResolveInfo, GraphQLSchema
    from strawberry import Schema
    from strawberry.types.field import StrawberryField


def graphql_schema(schema: Schema) -> GraphQLSchema:
    """The graphql-core schema Strawberry built (`Schema._schema`).

    Strawberry 0.341 has no public accessor for it, and graphql-core's own validation and
    execution take it: the planned path builds its executor on it, the query limits and
    validation run against it, and the cache checks its root types.
    """
    found: GraphQLSchema = schema._schema
    return found


def new_info(info_class: type[Any], raw_info: GraphQLResolveInfo, field: StrawberryField) -> Any:
    """A Strawberry `Info` for a resolver called by a plan (`info_class(_raw_info=,
    _field=)`, as Strawberry's schema converter builds it).

    `Info` is a dataclass whose only fields are these two private ones; Strawberry has no
    public constructor. Plans call resolvers without Strawberry's resolver wrapper.
    """
    return info_class(_raw_info=raw_info, _field=field)


def field_nodes(info: Any) -> list[FieldNode]:
    """The field's merged nodes (`Info._raw_info.field_nodes`).

    The column look-ahead is derived once per set of nodes, keyed by their identity;
    Strawberry's public `selected_fields` converts them anew on every call.
    """
    nodes: list[FieldNode] = info._raw_info.field_nodes
    return nodes


async def send_result_stream(handler: Any, operation: Any, result_source: Any) -> bool:
    """graphql-transport-ws: what Strawberry's `run_operation` does with an operation's
    results (`_send_result_stream`): each result as a `next` message, a pre-execution
    error as an `error` message or a 4400 close. False when it closed the socket
    (Strawberry's `_OperationStreamClosed`).

    Herald runs each operation on a context of its own, so it cannot call `run_operation`
    itself, and Strawberry has no public method for the part in between.
    """
    from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
        _OperationStreamClosed,
    )

    try:
        await handler._send_result_stream(operation, result_source)
    except _OperationStreamClosed:
        return False
    return True


RedisConsumer = _RedisConsumer
"""Dramatiq's Redis consumer (`dramatiq.brokers.redis._RedisConsumer`), which
app/worker/redis_broker.py extends so delayed messages outlive a Redis outage: Dramatiq
has no public consumer class or hook for a consumer's connection errors, only the
broker's `consumer_class` property that returns this class."""
