"""GraphQL over WebSocket (graphql-transport-ws): the API key in connection_init, pings,
and a fresh context per operation."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError
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
    PongMessage,
)
from strawberry.utils.aio import aclosing

from app.api_keys.auth import RequestAuth
from app.api_keys.service import ApiKeyService, Caller, bearer_token
from app.live import LiveConnection, LiveHub
from app.models import ApiKeyRole
from schema.context import Context

if TYPE_CHECKING:
    from app.web import HeraldGraphQL

UNAUTHORIZED = 4401
FORBIDDEN = 4403


class ConnectionAuth(RequestAuth):
    """The caller authenticated once at connection_init, shared by the connection's operations."""

    def __init__(self, caller: Caller | None, digest: str | None) -> None:
        self._caller = caller
        self._digest = digest

    @property
    def presented(self) -> bool:
        return self._digest is not None

    @property
    def token_digest(self) -> str | None:
        return self._digest

    async def caller(self) -> Caller | None:
        return self._caller


class TextWebSocketAdapter(ASGIWebSocketAdapter):
    """graphql-transport-ws messages are text frames (browsers cannot parse binary ones)."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        if self.ws.application_state != WebSocketState.CONNECTED:
            raise WebSocketDisconnected
        try:
            await self.ws.send_text(orjson.dumps(message).decode())
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
        token = bearer_token(_authorization(payload))
        caller = None
        if token is not None:
            async with self.context.request.app.state.runtime.sessionmaker() as session:
                caller = await ApiKeyService(session).authenticate(token)
                await session.commit()  # the key's last-use stamp
        if caller is None or not caller.can(ApiKeyRole.VIEWER):
            self.connection_init_received = True
            if self.connection_init_timeout_task:
                self.connection_init_timeout_task.cancel()
            if caller is None:
                reason = "invalid or revoked API key" if token else "an API key is required"
                await self.websocket.close(UNAUTHORIZED, reason)
            else:
                await self.websocket.close(FORBIDDEN, "this key may not subscribe")
            return
        assert token is not None
        digest = hashlib.sha256(token.encode()).hexdigest()
        self.context.auth = ConnectionAuth(caller, digest)
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

    async def shutdown(self) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
        if self.live is not None:
            self._hub.remove_connection(self.live)
        await super().shutdown()

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        """Strawberry's, with a context per operation: each has its own transaction
        boundary, and a long subscription holds no database connection."""
        assert self.live is not None
        context = self._view.operation_context(self.context, self._hub, self.live)
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
