"""Operations answered as a stream over HTTP: graphql-sse's distinct connections mode
(`Accept: text/event-stream`) and Apollo's multipart subscriptions (`Accept:
multipart/mixed;subscriptionSpec="1.0"`), each framed by Strawberry's transport for it.

A client that accepts nothing but a stream gets one for any operation: a query or a mutation
is one `next` event, then `complete`. A client that accepts JSON too (Apollo's) gets a stream
for a subscription only.

Before its answer starts, a request takes the pipeline's steps (schema/execution/pipeline.py) by the
same functions as the standard path (`variables_error`, `parse_steps`,
`shape_and_validation`), so it is refused at the same step and cost; its rate limit is
counted once, however many steps ask (the Handoff). What they refuse:

- a refusal of HTTP's own kind (a rate, a mutation over GET) is a JSON answer with its
  status, and so is a subscription without a valid key (401, the caller being looked up only
  once its document validated);
- the document's own errors (it does not parse, validate or fit the shape limits) are the
  stream's one `next` event, then `complete`, as graphql-sse's protocol asks: a 4xx makes its
  client retry five times without ever reading why. A client that takes JSON too gets them
  as JSON, as any of its requests.

A subscription then counts against WebSocket's caps (app/live/hub.py; a cap reached is an error
event), joins an identical subscription's stream, WebSocket's included (schema/fanout.py),
and ends when its client goes away, its key is revoked or the server shuts down
(app/http/protocol.py), giving its cap's slot back. A stream gives its load shedding slot
back once it has started (app/http/shedding.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson
from graphql import GraphQLError, OperationType
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.streaming import HTTPStreamTransport
from strawberry.schema import Schema
from strawberry.schema.base import BaseSchema
from strawberry.types import ExecutionResult
from strawberry.utils.aio import aclosing

from app.api_keys.service import Caller
from app.compat import graphql_schema
from app.http.graphql import Refusal, refused_with_status
from app.http.protocol import END_STREAM
from app.http.shedding import release_in_flight
from app.live.hub import CapReached, LiveConnection, LiveHub
from app.process.runtime import Runtime
from schema.context import Context
from schema.execution.pipeline import variables_error
from schema.extensions import request_boundary
from schema.fanout import Outlet, stream_key
from schema.limits import HANDOFF, Handoff, handoff_of_scope, parse_steps, shape_and_validation
from schema.masking import report
from schema.permissions import UnauthenticatedError
from schema.websocket import ConnectionAuth, LiveView, SubscriptionLimitError

if TYPE_CHECKING:
    from strawberry.schema.schema import StreamResult

Write = Callable[[str], Coroutine[Any, Any, None]]
# How a stream is ended from outside (a revoked key): LiveConnection's `close`.
Stop = Callable[[int, str], Awaitable[None]]


class StreamView(LiveView, Protocol):
    """What a stream needs of the view (schema/view.py's HeraldGraphQL)."""

    schema: BaseSchema

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse: ...

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response: ...


class Answered(Exception):
    """A request answered outside Strawberry's flow (a stream, or a refusal before it): raised
    out of the view's `run`, and sent as it is."""

    def __init__(self, response: ASGIApp) -> None:
        super().__init__()
        self.response = response


@dataclass(frozen=True, slots=True)
class Operation:
    """The request's operation, its document found, and whether JSON would do as an answer."""

    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    only_streams: bool  # `Accept` names no JSON type


async def stream_answer(
    view: StreamView,
    request: Request,
    context: Context,
    sub_response: Response,
    operation: Operation,
    transport: HTTPStreamTransport,
) -> ASGIApp | None:
    """The answer to a client that accepts a stream; None when it is the ordinary JSON one
    (to a client that takes JSON, any operation but a subscription, and any refusal made
    before the operation is known). Raises Refusal for a subscription without a valid key."""
    handoff = handoff_of_scope(request.scope)
    if handoff is None:
        handoff = request.scope[HANDOFF] = Handoff()  # what is done here is not done again
    query, name, variables = operation.query, operation.operation_name, operation.variables
    subscription = False
    try:
        if not handoff.variables_within_bounds:
            if (error := variables_error(variables, context.settings)) is not None:
                raise error
            handoff.variables_within_bounds = True
        parsed, node = await parse_steps(context, query, name, variables)
        subscription = node.operation is OperationType.SUBSCRIPTION
        if not (subscription or operation.only_streams):
            return None
        assert isinstance(view.schema, Schema)  # Herald's own
        schema = graphql_schema(view.schema)
        errors = list(shape_and_validation(context, schema, parsed, query, name, variables))
    except GraphQLError as error:
        errors = [error]
    if errors:
        if not (subscription or operation.only_streams):
            return None  # the ordinary path refuses it alike, at the same step
        report(errors, context.settings, name)
        formatted: list[object] = [error.formatted for error in errors]
        body: GraphQLHTTPResponse = {"errors": formatted}
        if not operation.only_streams or refused_with_status(formatted[0]):
            # In the JSON type the client takes; its headers: Retry-After, Allow.
            return view.create_response(body, sub_response)
        return EventStream(transport, partial(_one, transport, body))
    if not subscription:
        return EventStream(
            transport, partial(_execute, view, request, context, operation, transport)
        )
    caller = await _caller(context)
    return EventStream(transport, partial(_subscribe, view, context, caller, operation, transport))


async def _caller(context: Context) -> Caller:
    """A subscription's caller: its key looked up now (its last-use stamp committed), as a
    WebSocket's is at connection_init; refused with 401 without a valid one."""
    async with request_boundary(context) as boundary:
        caller = await context.auth.caller()
        boundary.succeeded = True
    if caller is None:
        error = UnauthenticatedError(context.auth.presented)
        raise Refusal(error.message, "UNAUTHENTICATED", {"WWW-Authenticate": "Bearer"})
    return caller


def framing(transport: HTTPStreamTransport) -> Callable[[str], str]:
    """A `next` event in the transport's framing, around a payload already encoded (a shared
    stream encodes each event once for all its listeners)."""

    def frame(payload: str) -> str:
        fragment = cast("GraphQLHTTPResponse", orjson.Fragment(payload))
        return transport.encode_next(fragment, _json)

    return frame


def _json(data: object) -> str:
    return orjson.dumps(data).decode()


async def _one(
    transport: HTTPStreamTransport, body: GraphQLHTTPResponse, write: Write, stop: Stop
) -> None:
    await write(transport.encode_next(body, _json))
    await write(transport.encode_complete())


async def _execute(
    view: StreamView,
    request: Request,
    context: Context,
    operation: Operation,
    transport: HTTPStreamTransport,
    write: Write,
    stop: Stop,
) -> None:
    """A query or a mutation: its result as one event, on the request's own context."""
    source = await view.schema.stream(
        operation.query,
        variable_values=operation.variables,
        context_value=context,
        operation_name=operation.operation_name,
        operation_extensions=operation.extensions,
    )
    async with aclosing(source):
        async for result in source:
            assert isinstance(result, ExecutionResult)  # incremental delivery is not enabled
            body = await view.process_result(request, result)
            await write(transport.encode_next(body, _json))
    await write(transport.encode_complete())


async def _subscribe(
    view: StreamView,
    context: Context,
    caller: Caller,
    operation: Operation,
    transport: HTTPStreamTransport,
    write: Write,
    stop: Stop,
) -> None:
    """A subscription: within its key's caps, on the stream it shares with identical ones."""
    hub: LiveHub = context.request.app.state.live
    runtime: Runtime = context.request.app.state.runtime
    digest = context.auth.token_digest
    assert digest is not None  # a caller was found for it
    context.auth = ConnectionAuth(caller, digest, runtime.callers)
    connection = LiveConnection(caller.key_id, digest, stop)
    frame = framing(transport)
    try:
        slot = await hub.reserve(connection)
    except CapReached as cap:
        error = SubscriptionLimitError(cap.which, cap.limit)
        await write(frame(_json({"errors": [error.formatted]})))
        await write(transport.encode_complete())
        return
    hub.add_connection(connection)  # a revocation of its key ends it
    try:

        def start() -> Awaitable[StreamResult]:  # only the stream's first listener runs it
            return view.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=view.operation_context(context, hub),
                operation_name=operation.operation_name,
            )

        key = stream_key(operation.query, operation.operation_name, operation.variables, digest)
        outlet = Outlet(frame, write)
        async with view.shared_streams.join(key, start, outlet):
            errors = await outlet.finished
        if errors is not None:
            await write(frame(_json({"errors": errors})))
        await write(transport.encode_complete())
    finally:
        hub.remove_connection(connection)
        hub.release(connection, slot)


class EventStream:
    """A streamed answer: its head, then what `body` writes, with the transport's heartbeats
    while it runs; ended early, and quietly, by `end` (or `stop`)."""

    def __init__(
        self, transport: HTTPStreamTransport, body: Callable[[Write, Stop], Awaitable[None]]
    ) -> None:
        self.transport = transport
        self.body = body
        self._task: asyncio.Task[Any] | None = None
        self._stopping = False

    def end(self) -> None:
        """Ends the stream now (the client went away, its key was revoked, the server stops)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()

    async def stop(self, code: int, reason: str) -> None:
        """`end`, as a LiveConnection closes its socket."""
        self.end()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in self.transport.headers.items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        release_in_flight(scope)
        scope[END_STREAM] = self.end

        async def write(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        self._task = task = asyncio.current_task()
        assert task is not None
        watchers = [
            asyncio.create_task(self._until_disconnected(receive)),
            asyncio.create_task(self._heartbeats(write)),
        ]
        try:
            await self.body(write, self.stop)
        except asyncio.CancelledError:
            if not self._stopping or task.uncancel() > 0:
                raise  # not (only) this stream's end: the server stopping, say
        finally:
            self._task = None
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _until_disconnected(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.end()

    async def _heartbeats(self, write: Write) -> None:
        """What keeps proxies from closing an idle stream: SSE's comment, multipart's `{}`."""
        transport = self.transport
        beat = transport.heartbeat_message(_json)
        if not transport.send_initial_heartbeat:
            await asyncio.sleep(transport.heartbeat_interval)
        while True:
            await write(beat)
            await asyncio.sleep(transport.heartbeat_interval)
