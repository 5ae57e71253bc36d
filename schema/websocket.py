"""GraphQL over WebSocket (graphql-transport-ws): the API key in connection_init, pings,
caps, and identical subscriptions executed once for all who asked."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Protocol, cast

import orjson
from graphql import GraphQLError, OperationType, get_operation_ast
from starlette.websockets import WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    ErrorMessage,
    Message,
    PongMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.utils.aio import aclosing

from app.api_keys.auth import CallerCache, RequestAuth
from app.api_keys.service import ApiKeyService, Caller, bearer_token
from app.compat import send_result_stream
from app.http.protocol import lift_message_limit
from app.live.hub import CapReached, LiveConnection, LiveHub
from app.models import ApiKeyRole
from schema.context import Context
from schema.execution.pipeline import parse_request_document
from schema.fanout import Outlet, SharedStreams, stream_key

if TYPE_CHECKING:
    from strawberry.schema.schema import StreamResult

logger = logging.getLogger(__name__)


class LiveView(Protocol):
    """What this protocol needs of the view that serves it (schema/view.py's HeraldGraphQL,
    which imports this module, not the reverse)."""

    shared_streams: SharedStreams

    def operation_context(self, base: Context, hub: LiveHub) -> Context: ...


UNAUTHORIZED = 4401
FORBIDDEN = 4403
SUBPROTOCOL_NOT_ACCEPTABLE = 4406


def pick_subprotocol(offered: list[str]) -> str | None:
    """graphql-transport-ws when offered, else whatever was offered first (None: nothing).

    A handshake answered without the subprotocol a browser asked for fails on its side
    with a bare 1006 and no reason; accepted with it, the socket is then closed with 4406
    and a reason that says which protocol to speak (`subprotocol_refusal`).
    """
    if GRAPHQL_TRANSPORT_WS_PROTOCOL in offered:
        return GRAPHQL_TRANSPORT_WS_PROTOCOL
    return offered[0] if offered else None


def subprotocol_refusal(offered: list[str]) -> str:
    """The close reason for a WebSocket that offered no subprotocol Herald speaks."""
    if GRAPHQL_WS_PROTOCOL in offered:
        what = "subscriptions-transport-ws (subprotocol graphql-ws) is not served"
    elif offered:
        what = f"subprotocol {offered[0][:40]!r} is not served"
    else:
        what = "no subprotocol was asked for"
    return f"{what}: use graphql-transport-ws, as the graphql-ws client does"


class SubscriptionLimitError(GraphQLError):
    def __init__(self, which: str, limit: int) -> None:
        super().__init__(
            f"too many live subscriptions {which} (at most {limit})",
            extensions={"code": "SUBSCRIPTION_LIMIT", "limit": limit},
        )


async def is_subscription(query: str, operation_name: str | None, max_tokens: int) -> bool:
    """Whether a document's operation is a subscription (anything unparsable: no, and the
    ordinary path reports it). The parse is the request pipeline's, cached for the steps
    that follow."""
    try:
        parsed = await parse_request_document(query, max_tokens)
    except GraphQLError:
        return False
    operation = get_operation_ast(parsed.document, operation_name)
    return operation is not None and operation.operation is OperationType.SUBSCRIPTION


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

    @property
    def well_formed(self) -> bool:
        """The key was checked at connection_init: there is one if a digest is."""
        return self._digest is not None

    def known_caller(self) -> Caller | None:
        return self._caller

    async def caller(self) -> Caller | None:
        return self._caller

    def observe_epoch(self, epoch: int) -> None:
        """Revocations end the socket itself (app/live/hub.py), not a cached lookup."""


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
        if code == SUBPROTOCOL_NOT_ACCEPTABLE:  # Strawberry's own reason names nothing
            reason = subprotocol_refusal(list(self.ws.scope.get("subprotocols") or []))
        if self.ws.application_state == WebSocketState.CONNECTED:
            with suppress(RuntimeError, OSError):
                await self.ws.close(code=code, reason=reason)


class LegacyProtocolRefusal(BaseGraphQLWSHandler[Context, None]):
    """What answers the legacy subscriptions-transport-ws protocol (subprotocol graphql-ws):
    accepted with its subprotocol, then closed with 4406 and a reason naming the one served."""

    async def handle(self) -> None:
        await self.websocket.close(SUBPROTOCOL_NOT_ACCEPTABLE, "")


def malformed(message: object) -> str | None:
    """Why a frame is not a graphql-transport-ws message, or None when it is one.

    Strawberry's handler indexes into a frame trusting its shape, so `[1]` or a string
    payload raised out of it and dropped the socket with no close frame; the protocol wants
    4400 with a reason instead.
    """
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        return "a message must be an object with a string type"
    kind, payload = message["type"], message.get("payload")
    if kind in ("subscribe", "complete") and not isinstance(message.get("id"), str):
        return f"a {kind} message needs a string id"
    if kind != "subscribe":
        return None if isinstance(payload, dict | None) else "the payload must be an object"
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        return "a subscribe payload needs a string query"
    if not (
        isinstance(payload.get("variables"), dict | None)
        and isinstance(payload.get("operationName"), str | None)
        and isinstance(payload.get("extensions"), dict | None)
    ):
        return "variables and extensions must be objects, operationName a string"
    return None


def next_frame(op_id: str) -> Callable[[str], str]:
    """An operation's `next` message around a payload already encoded."""
    prefix = '{"id":' + orjson.dumps(op_id).decode() + ',"type":"next","payload":'
    return lambda payload: prefix + payload + "}"


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

    async def handle_message(self, message: Message) -> None:
        problem = malformed(message)
        if problem is not None:
            await self.handle_invalid_message(problem)
            return
        await super().handle_message(message)

    @property
    def _view(self) -> LiveView:
        return cast("LiveView", self.view)

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
        # Before the ack, after which the client sends its operations.
        lift_message_limit(self.context.request.scope)
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
        if not await is_subscription(
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
        key = stream_key(
            operation.query, operation.operation_name, operation.variables, self.live.key_digest
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
        outlet = self._outlets[operation.id] = Outlet(next_frame(operation.id), adapter.send_text)
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
                if not await send_result_stream(self, operation, result_source):
                    return  # it closed the socket
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
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
