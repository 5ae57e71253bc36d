"""GraphQL over WebSocket (graphql-transport-ws): the API key in connection_init, pings,
caps, and identical subscriptions executed once for all who asked."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import orjson
from graphql import GraphQLError, GraphQLFormattedError, OperationType, get_operation_ast, parse
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
    _OperationStreamClosed,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    PongMessage,
)
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

from app.api_keys.auth import CallerCache, RequestAuth
from app.api_keys.service import ApiKeyService, Caller, bearer_token
from app.live import CapReached, LiveConnection, LiveHub
from app.models import ApiKeyRole
from schema.context import Context

if TYPE_CHECKING:
    from strawberry.schema.schema import StreamResult

    from app.web import HeraldGraphQL

logger = logging.getLogger(__name__)

UNAUTHORIZED = 4401
FORBIDDEN = 4403

# A shared stream's end for its listeners: None when it completed, else its `error` payload.
StreamEnd = list[GraphQLFormattedError] | None


class SubscriptionLimitError(GraphQLError):
    def __init__(self, which: str, limit: int) -> None:
        super().__init__(
            f"too many live subscriptions {which} (at most {limit})",
            extensions={"code": "SUBSCRIPTION_LIMIT", "limit": limit},
        )


@functools.lru_cache(maxsize=256)
def is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    """Whether a document's operation is a subscription (anything unparsable: no, and the
    ordinary path reports it)."""
    try:
        operation = get_operation_ast(parse(query, max_tokens=max_tokens), operation_name)
    except GraphQLError:
        return False
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Future[None] | None:
    """Run `coro` in the caller's own step until it first suspends, as Python 3.12's eager
    tasks do: None when it finished without suspending (a socket write that did not meet
    back-pressure), else a task that carries it on. What it raised before suspending is
    raised here."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    task = asyncio.ensure_future(_CarryOn(coro, waiting_on))
    # A task cancelled before its first step never reaches the coroutine: end it here, so
    # its `finally` clauses run now rather than whenever it is collected.
    task.add_done_callback(lambda _: coro.close())
    return task


class _CarryOn:
    """Awaiting this carries on a coroutine that suspended outside any task: the awaiting task
    first waits for what the coroutine was waiting for, then drives it (a cancellation is
    thrown in where it waits, as a task would)."""

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: object) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except BaseException as exc:
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    waiting_on = coro.send(sent)
                except StopIteration:
                    return


class Outlet:
    """One operation's end of a shared stream.

    Each `next` frame is the stream's payload, encoded once for all, behind this operation's
    id, and it is written at once in the publisher's step: a thousand listeners cost a
    thousand socket writes per event, not a thousand task wake-ups and encodings. A peer
    whose socket pushes back gets the newest frame once it drains: a slow reader skips
    events, never piles them up, and never holds the others up. `finished` resolves once the
    stream has ended and every frame before its end is written (or with the socket's error).
    """

    def __init__(self, op_id: str, send: Callable[[str], Coroutine[Any, Any, None]]) -> None:
        self._prefix = '{"id":' + orjson.dumps(op_id).decode() + ',"type":"next","payload":'
        self._send = send
        self._writing: asyncio.Future[None] | None = None
        self._pending: str | None = None  # the newest frame, while a write is blocked
        self._ended = False
        self._end: StreamEnd = None
        self.closed = False
        self.finished: asyncio.Future[StreamEnd] = asyncio.get_running_loop().create_future()

    def next(self, payload: str) -> None:
        if self.closed:
            return
        frame = self._prefix + payload + "}"
        if self._writing is None:
            self._write(frame)
        else:
            self._pending = frame

    def end(self, end: StreamEnd) -> None:
        self._ended, self._end = True, end
        self._settle()

    def close(self) -> None:
        """The operation is over (completed by the client, or the socket closed)."""
        self.closed, self._pending = True, None
        if self._writing is not None:
            self._writing.cancel()

    def _write(self, frame: str) -> None:
        try:
            self._writing = start_eagerly(self._send(frame))
        except Exception as exc:  # the socket is gone
            self._fail(exc)
            return
        if self._writing is None:
            self._settle()
        else:
            self._writing.add_done_callback(self._written)

    def _written(self, writing: asyncio.Future[None]) -> None:
        self._writing = None
        if writing.cancelled() or self.closed:
            return
        if (exc := writing.exception()) is not None:
            self._fail(exc)
        elif self._pending is not None:
            frame, self._pending = self._pending, None
            self._write(frame)
        else:
            self._settle()

    def _settle(self) -> None:
        if self._ended and self._writing is None and not self.finished.done():
            self.finished.set_result(self._end)

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        if not self.finished.done():
            self.finished.set_exception(exc)


@dataclass(eq=False)
class _Shared:
    listeners: set[Outlet] = field(default_factory=set)
    last: str | None = None  # the latest `next` payload, encoded
    task: asyncio.Task[None] | None = None


class SharedStreams:
    """Identical subscriptions (same document, variables and API key) executed once.

    Executing a subscription's selection for each event costs far more than sending it
    (graphql-core's per-field work); a thousand dashboards on one campaign would pay it a
    thousand times per event. Same key, same permissions: the result is the same for all,
    and so is its encoding. A late joiner gets the latest event at once, then follows along.
    """

    def __init__(self) -> None:
        self._streams: dict[tuple[str, ...], _Shared] = {}

    @asynccontextmanager
    async def join(
        self,
        key: tuple[str, ...],
        start: Callable[[], Awaitable[StreamResult]],
        outlet: Outlet,
    ) -> AsyncIterator[None]:
        shared = self._streams.get(key)
        if shared is None:
            shared = self._streams[key] = _Shared()
            shared.task = asyncio.create_task(self._run(key, shared, start))
        shared.listeners.add(outlet)
        if shared.last is not None:
            outlet.next(shared.last)
        try:
            yield
        finally:
            outlet.close()
            shared.listeners.discard(outlet)
            if not shared.listeners and self._streams.get(key) is shared:
                del self._streams[key]
                assert shared.task is not None
                shared.task.cancel()

    async def _run(
        self, key: tuple[str, ...], shared: _Shared, start: Callable[[], Awaitable[StreamResult]]
    ) -> None:
        end: StreamEnd = None
        try:
            source = await start()
            async with aclosing(source):
                async for result in source:
                    if isinstance(result, PreExecutionError) or not isinstance(
                        result, ExecutionResult
                    ):
                        end = [error.formatted for error in getattr(result, "errors", None) or []]
                        return
                    payload: dict[str, Any] = {"data": result.data}
                    if result.errors:
                        payload["errors"] = [error.formatted for error in result.errors]
                    if result.extensions:
                        payload["extensions"] = result.extensions
                    shared.last = encoded = orjson.dumps(payload).decode()
                    for outlet in tuple(shared.listeners):
                        outlet.next(encoded)
        except GraphQLError as error:
            # A refusal raised by an extension before execution (query limits, rate limit).
            end = [error.formatted]
        except Exception:
            logger.exception("shared subscription failed")
            end = [GraphQLError("internal error").formatted]
        finally:
            if self._streams.get(key) is shared:
                del self._streams[key]
            for outlet in shared.listeners:
                outlet.end(end)


class ConnectionAuth(RequestAuth):
    """The caller authenticated once at connection_init, shared by the connection's operations."""

    def __init__(self, caller: Caller | None, digest: str | None, callers: CallerCache) -> None:
        self._caller = caller
        self._digest = digest
        self._callers = callers  # what revokeApiKey over this socket clears

    @property
    def presented(self) -> bool:
        return self._digest is not None

    @property
    def token_digest(self) -> str | None:
        return self._digest

    async def caller(self) -> Caller | None:
        return self._caller

    def observe_epoch(self, epoch: int) -> None:
        """Revocations end the socket itself (app/live.py), not a cached lookup."""


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """graphql-transport-ws messages are text frames (browsers cannot parse binary ones)."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        await self.send_text(orjson.dumps(message).decode())

    async def send_text(self, text: str) -> None:
        """One message, already encoded (shared streams encode an event once for all)."""
        if self.ws.application_state != WebSocketState.CONNECTED:
            raise WebSocketDisconnected
        try:
            await self.ws.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise WebSocketDisconnected from exc

    async def close(self, code: int, reason: str) -> None:
        if self.ws.application_state == WebSocketState.CONNECTED:
            with suppress(RuntimeError, OSError):
                await self.ws.close(code=code, reason=reason)


def _authorization(payload: Mapping[str, Any]) -> str | None:
    for name, value in payload.items():
        if isinstance(name, str) and name.lower() == "authorization" and isinstance(value, str):
            return value
    return None


class LiveTransportHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's handler, plus: the key is checked before the ack (4401/4403), the
    server pings, and each operation gets a context (session, loaders) of its own."""

    live: LiveConnection | None = None
    _pinger: asyncio.Task[None] | None = None
    _awaiting_pong = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._outlets: dict[str, Outlet] = {}  # the shared subscriptions' ends, by operation id

    @property
    def _view(self) -> HeraldGraphQL:
        return self.view  # type: ignore[return-value]

    @property
    def _hub(self) -> LiveHub:
        hub: LiveHub = self.context.request.app.state.live
        return hub

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload") or {}
        if (
            self.connection_init_received
            or self.connection_timed_out
            or not isinstance(payload, dict)
        ):
            await super().handle_connection_init(message)  # Strawberry's own refusals
            return
        if self.connection_init_timeout_task:
            self.connection_init_timeout_task.cancel()  # it came in time; the lookup may queue
        token = bearer_token(_authorization(payload))
        caller = None
        if token is not None:
            async with self.context.request.app.state.runtime.sessionmaker() as session:
                caller = await ApiKeyService(session).authenticate(token)
                await session.commit()  # the key's last-use stamp
        if caller is None or not caller.can(ApiKeyRole.VIEWER):
            self.connection_init_received = True
            if caller is None:
                reason = "invalid or revoked API key" if token else "an API key is required"
                await self.websocket.close(UNAUTHORIZED, reason)
            else:
                await self.websocket.close(FORBIDDEN, "this key may not subscribe")
            return
        assert token is not None
        digest = hashlib.sha256(token.encode()).hexdigest()
        runtime = self.context.request.app.state.runtime
        self.context.auth = ConnectionAuth(caller, digest, runtime.callers)
        await super().handle_connection_init(message)
        if self.connection_acknowledged:
            self.live = LiveConnection(caller.key_id, digest, self.websocket.close)
            self._hub.add_connection(self.live)
            self._pinger = asyncio.create_task(self._ping())

    async def _ping(self) -> None:
        """A peer that stops answering pings is dropped, and its subscriptions with it."""
        interval = self.context.settings.live_ping_interval_s
        while True:
            await asyncio.sleep(interval)
            if self._awaiting_pong:
                await self.websocket.close(4408, "No pong received")
                return
            self._awaiting_pong = True
            try:
                await self.send_message({"type": "ping"})
            except WebSocketDisconnected:
                return

    async def handle_pong(self, message: PongMessage) -> None:
        self._awaiting_pong = False

    async def cleanup_operation(self, operation_id: str) -> None:
        """Completed by the client (or the socket is closing): not one frame more for it, even
        before its task has seen the cancellation."""
        outlet = self._outlets.pop(operation_id, None)
        if outlet is not None:
            outlet.close()
        await super().cleanup_operation(operation_id)

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        if self.live is not None:
            self._hub.remove_connection(self.live)
        await super().shutdown()

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """Subscriptions join a shared stream, within the caps; other operations run as in
        Strawberry, each on a context of its own (its own transaction boundary)."""
        assert self.live is not None
        settings = self.context.settings
        if not is_subscription(
            operation.query, operation.operation_name, settings.query_max_tokens
        ):
            await self._run_alone(operation)
            return
        try:
            slot = await self._hub.reserve(self.live)
        except CapReached as cap:
            await operation.send_initial_errors([SubscriptionLimitError(cap.which, cap.limit)])
            return
        try:
            await self._run_shared(operation)
        except WebSocketDisconnected:
            self.operations.pop(operation.id, None)
        finally:
            self._hub.release(self.live, slot)

    async def _run_shared(self, operation: Operation[Context, None]) -> None:
        assert self.live is not None
        variables = orjson.dumps(operation.variables or {}, option=orjson.OPT_SORT_KEYS)
        key = (
            operation.query,
            operation.operation_name or "",
            variables.decode(),
            self.live.key_digest,
        )

        def start() -> Awaitable[StreamResult]:  # only the stream's first listener runs it
            return self.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=self._view.operation_context(self.context, self._hub),
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )

        adapter = cast("TextWebSocketAdapter", self.websocket)
        outlet = self._outlets[operation.id] = Outlet(operation.id, adapter.send_text)
        streams: SharedStreams = self._view.shared_streams
        try:
            async with streams.join(key, start, outlet):
                errors = await outlet.finished
        finally:
            if self._outlets.get(operation.id) is outlet:
                del self._outlets[operation.id]
        if errors is not None:
            await operation.send_operation_message(
                ErrorMessage(id=operation.id, type="error", payload=errors)
            )
            return
        await operation.send_operation_message({"id": operation.id, "type": "complete"})

    async def _run_alone(self, operation: Operation[Context, None]) -> None:
        context = self._view.operation_context(self.context, self._hub)
        try:
            result_source = await self.schema.stream(
                operation.query,
                variable_values=operation.variables,
                context_value=context,
                root_value=self.root_value,
                operation_name=operation.operation_name,
            )
            async with aclosing(result_source):
                await self._send_result_stream(operation, result_source)
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except _OperationStreamClosed:
            return
        except GraphQLError as error:
            # A refusal raised by an extension before execution (query limits, rate limit):
            # over HTTP it is the response's error, here the operation's `error` message.
            await operation.send_initial_errors([error])
        except WebSocketDisconnected:
            self.operations.pop(operation.id, None)
        except Exception as error:
            await self.handle_task_exception(error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)
            raise
