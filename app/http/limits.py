"""Request body size limit (ASGI middleware): 413 before a byte too many is buffered, as a
GraphQL response (app/http/graphql.py)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api_keys.service import bearer_token, well_formed
from app.http.graphql import Refusal


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """The most a request may send, as its body or its query string: `max_bytes`, or
    `anonymous_bytes` to the GraphQL endpoint without a well-formed key. A caller without a
    key can run no more than introspection and `__typename` (under 2 KB), so a larger
    request is refused before anything reads it (a body from its Content-Length): a large
    document or a million variables' values from anyone costs no parse and no decoding."""

    max_bytes: int
    anonymous_bytes: int
    graphql_path: str

    def of(self, scope: Scope) -> int:
        if scope["path"] != self.graphql_path or self.anonymous_bytes >= self.max_bytes:
            return self.max_bytes
        for name, value in scope["headers"]:
            if name == b"authorization":
                token = bearer_token(value.decode("latin-1"))
                if token is not None and well_formed(token):
                    return self.max_bytes
        return self.anonymous_bytes

    def body_refusal(self, max_bytes: int) -> Refusal:
        return self._refusal(max_bytes, "body", "REQUEST_TOO_LARGE")

    def query_string_refusal(self, max_bytes: int) -> Refusal:
        return self._refusal(max_bytes, "query string", "URI_TOO_LONG")

    def _refusal(self, max_bytes: int, what: str, code: str) -> Refusal:
        if max_bytes < self.max_bytes:
            message = (
                f"a request without an API key may send a {what} of at most {max_bytes}"
                " bytes: send `Authorization: Bearer <key>`"
            )
        else:
            message = f"request {what} larger than {max_bytes} bytes"
        return Refusal(message, code)


class _TooLarge(Exception):
    pass


def declared_too_large(content_length: bytes, max_bytes: int) -> bool:
    """A Content-Length over the limit, or not a number at all: refused before reading."""
    return not content_length.isdigit() or int(content_length) > max_bytes


class StreamedSize:
    """A body's size as its messages arrive, against `max_bytes`: the one count of this
    middleware and of the planned path (schema/execution/endpoint.py), which hands a body over the
    limit
    to this middleware for its refusal. Every message counts, the last one too."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.received = 0

    def over(self, message: Message) -> bool:
        """Counts a received message; True once the body has passed the limit."""
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
        return self.received > self.max_bytes


class BodySizeLimit:
    """Refuses bodies over the request's `BodyLimit`: at once from Content-Length, or while
    streaming a chunked body (the declared length can be absent or a lie)."""

    def __init__(self, app: ASGIApp, limit: BodyLimit) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit.of(scope)
        if len(scope["query_string"]) > max_bytes:
            await self._refuse(scope, receive, send, self.limit.query_string_refusal(max_bytes))
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared_too_large(declared, max_bytes):
            await self._refuse(scope, receive, send, self.limit.body_refusal(max_bytes))
            return
        size = StreamedSize(max_bytes)
        response_started = False

        async def limited_receive() -> Message:
            message = await receive()
            if size.over(message):
                raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if response_started:
                raise
            await self._refuse(scope, receive, send, self.limit.body_refusal(max_bytes))

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, refusal: Refusal) -> None:
        # No `Connection: close`: closing with the client still sending makes the kernel
        # reset the connection, and the client would see a broken pipe instead of the 413.
        # The server drops the rest of the body as it arrives.
        accept = dict(scope["headers"]).get(b"accept", b"").decode("latin-1")
        await refusal.response(accept)(scope, receive, send)
