"""The library internals Herald relies on (app/compat.py, and the uvicorn protocol that
app/http/protocol.py extends) still exist and behave as relied on: a library upgrade that
changes one fails here, by name, before anything subtler does."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from typing import Any

import pytest
import strawberry
from dramatiq import Consumer
from dramatiq.brokers.redis import RedisBroker
from graphql import GraphQLResolveInfo, GraphQLSchema, execute, execute_sync, parse
from strawberry.subscriptions.protocols.graphql_transport_ws import handlers
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from app.compat import RedisConsumer, field_nodes, graphql_schema, new_info
from app.config import Settings
from app.http.protocol import HttpProtocol
from tests.conftest import Server, create_api_key
from tests.test_http_protocol import Recorded
from tests.test_live import WAIT
from tests.ws_client import gql_socket


@strawberry.type
class Query:
    @strawberry.field
    def hello(self, name: str = "world") -> str:
        return f"hello {name}"


SCHEMA = strawberry.Schema(query=Query)


def test_strawberry_builds_the_graphql_core_schema_it_executes_on() -> None:
    # when
    graphql = graphql_schema(SCHEMA)
    # then: graphql-core runs Strawberry's resolvers on it
    assert isinstance(graphql, GraphQLSchema)
    result = execute_sync(graphql, parse('{ hello(name: "compat") }'))
    assert (result.data, result.errors) == ({"hello": "hello compat"}, None)


def test_a_strawberry_info_is_made_of_the_raw_info_and_the_field() -> None:
    # given the resolve info graphql-core hands a resolver
    raws: list[GraphQLResolveInfo] = []

    def capture(next_: Any, root: Any, info: GraphQLResolveInfo, **arguments: Any) -> Any:
        raws.append(info)
        return next_(root, info, **arguments)

    document = parse("{ hello }")
    execute(graphql_schema(SCHEMA), document, context_value="context", middleware=[capture])
    (raw,) = raws
    definition = raw.parent_type.fields["hello"].extensions["strawberry-definition"]
    # when
    info = new_info(strawberry.Info, raw, definition)
    # then
    assert [f.name for f in dataclasses.fields(strawberry.Info)] == ["_raw_info", "_field"]
    assert (info.field_name, info.python_name, info.context) == ("hello", "hello", "context")
    assert info.schema is SCHEMA
    assert field_nodes(info) == list(document.definitions[0].selection_set.selections)  # type: ignore[attr-defined]


def test_strawberry_sends_an_operations_results_as_relied_on() -> None:
    # `send_result_stream` calls this method and catches this exception
    method = handlers.BaseGraphQLTransportWSHandler._send_result_stream
    assert inspect.iscoroutinefunction(method)
    assert list(inspect.signature(method).parameters) == ["self", "operation", "result_source"]
    assert issubclass(handlers._OperationStreamClosed, Exception)


@pytest.mark.asyncio
async def test_an_operation_that_does_not_validate_gets_its_error_message(
    server: Server, settings: Settings
) -> None:
    # given an acknowledged connection
    viewer = await create_api_key(settings, "viewer")
    async with gql_socket(server.url) as socket:
        assert (await socket.init(viewer))["type"] == "connection_ack"
        # when a query asks for a field that does not exist (a pre-execution error, which
        # Strawberry's result sender turns into the operation's `error` message)
        payload = {"query": "{ dashboard { nope } }"}
        await socket.send({"id": "q", "type": "subscribe", "payload": payload})
        message = await asyncio.wait_for(socket.receive(), WAIT)
        # then the socket stays open for the next operation
        await socket.send({"id": "v", "type": "subscribe", "payload": {"query": "{ version }"}})
        following = await asyncio.wait_for(socket.receive(), WAIT)
    assert (message["type"], message["id"]) == ("error", "q")
    assert "nope" in message["payload"][0]["message"]
    assert (following["type"], following["id"]) == ("next", "v")


def test_dramatiq_redis_consumers_are_the_class_extended() -> None:
    # given
    broker = RedisBroker(url="redis://127.0.0.1:1/0")  # connects only when used
    # then
    assert broker.consumer_class is RedisConsumer
    assert issubclass(RedisConsumer, Consumer)
    parameters = list(inspect.signature(RedisConsumer.__init__).parameters)
    assert parameters == ["self", "broker", "queue_name", "prefetch", "timeout"]
    assert {"ack", "nack", "requeue", "__next__"} <= set(vars(RedisConsumer))
    assert callable(RedisConsumer.close)


@pytest.mark.asyncio
async def test_uvicorn_protocol_state_that_herald_reads() -> None:
    # given uvicorn's httptools protocol on a recorded transport
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.Event().wait()  # the response stays incomplete

    config = Config(app=app, http="httptools", lifespan="off")
    state = ServerState()
    protocol = HttpToolsProtocol(config=config, server_state=state, app_state={})
    transport = Recorded()
    # when a request's head arrives
    protocol.connection_made(transport)
    assert protocol.timeout_keep_alive_task is None
    protocol.data_received(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    # then what app/http/protocol.py reads is there
    assert (protocol.url, protocol.headers) == (b"/x", [(b"host", b"h")])
    first = protocol.cycle
    assert first.scope["path"] == "/x"
    assert first.response_complete is False
    assert first.on_response == protocol.on_response_complete
    assert (protocol.transport, protocol.loop) == (transport, asyncio.get_running_loop())
    assert state.default_headers == []
    assert STATUS_LINE[431] == b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    for name in ("on_message_begin", "on_message_complete", "on_headers_complete", "on_body"):
        assert callable(getattr(protocol, name))
    assert callable(protocol.send_400_response)
    assert callable(protocol.shutdown)
    assert callable(protocol.handle_websocket_upgrade)
    assert isinstance(protocol.access_log, bool)  # whether it writes access lines
    assert protocol.access_logger.name == "uvicorn.access"
    # and a request pipelined behind it waits in `pipeline`, as the newest cycle
    assert not protocol.pipeline
    protocol.data_received(b"GET /y?z=1 HTTP/1.1\r\nHost: h\r\n\r\n")
    [(queued, _)] = protocol.pipeline
    assert protocol.cycle is queued
    assert (queued.scope["raw_path"], queued.scope["query_string"]) == (b"/y", b"z=1")
    assert (queued.scope["method"], queued.scope["http_version"]) == ("GET", "1.1")
    # and none of Herald's own attributes is uvicorn's
    herald = {name for name in vars(HttpProtocol) if name.startswith("_") and name[1] != "_"}
    herald |= {"_max_head_bytes", "_head_timeout_s", "_head_timer", "_head_pending"}
    herald |= {"_head_bytes", "_read_bytes", "_read_shared", "_refused"}
    herald |= {"_in_flight", "_release"}
    # but the one it overrides: where uvicorn hands a request (now or pipelined) to the app
    herald.discard("_start_asgi_task")
    assert list(inspect.signature(HttpToolsProtocol._start_asgi_task).parameters) == [
        "self",
        "cycle",
        "app",
    ]
    assert not herald & (set(vars(protocol)) | set(dir(HttpToolsProtocol)))
    protocol.shutdown()
    for task in state.tasks:
        task.cancel()
