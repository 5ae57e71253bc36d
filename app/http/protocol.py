"""uvicorn's HTTP protocol, with a response's head and body leaving in one write, the
bounds on a request's head that uvicorn only gives its h11 protocol, and load shedding
(app/http/shedding.py); the options every place that starts uvicorn uses (`server_options`).

uvicorn writes the status line and headers as soon as the application starts its response,
and the body in a second write: two send() calls and two TCP segments per response, which
on a small answer cost about as much as building it. The head is held until the body's
first write, or until the end of the event loop's current step at the latest, so a
streamed response's head is not delayed behind its first chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from typing import Any, cast

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from app.config import Settings
from app.http.shedding import EXEMPT, RELEASE, RETRY_AFTER_S, InFlight, overloaded
from app.observability.metrics import SHED_REQUESTS

# The scope's keys for work that stops when its client goes away: the task to cancel (set
# by whoever may be cancelled safely: a query writes nothing), and the mark that it was.
CANCEL_ON_DISCONNECT = "herald.cancel_on_disconnect"
DISCONNECTED = "herald.disconnected"
# The scope's key for how a streamed answer (a subscription over SSE or multipart) is ended
# when the server shuts down: it would never end on its own.
END_STREAM = "herald.end_stream"
# The scope's extension that lifts a WebSocket's message bound to the authenticated one,
# once the socket's caller is known (schema/websocket.py, at an accepted connection_init).
LIFT_MESSAGE_LIMIT = "herald.lift_message_limit"
# Sent on every response by uvicorn itself, so the planned path pays nothing per request.
DEFAULT_HEADERS = [("x-content-type-options", "nosniff")]
_TOO_LARGE = b"request headers too large"


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options wherever Herald starts it (`herald serve`, `herald dev`, the tests):
    the protocols below, HTTP's with its head bounds and the server's one count of requests
    in flight (uvicorn makes a protocol per connection; each worker process gets a copy of
    its own), WebSocket's with its message bounds; the keep-alive, no `server` banner."""
    return {
        "http": partial(
            HttpProtocol,
            max_head_bytes=settings.http_max_head_bytes,
            head_timeout_s=settings.http_head_timeout_s,
            in_flight=InFlight(settings.max_in_flight),
        ),
        # graphql-transport-ws messages are GraphQL requests: bounded like a request body,
        # an anonymous one's until connection_init has brought an accepted key.
        "ws": partial(WebSocketProtocol, anonymous_max_bytes=settings.request_max_bytes_anonymous),
        "ws_max_size": settings.request_max_bytes,
        "timeout_keep_alive": settings.http_keep_alive_s,
        "server_header": False,
        "headers": DEFAULT_HEADERS,
    }


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """Given to uvicorn as `ws=` (server_options): uvicorn's protocol on websockets' sans-I/O
    one, its messages at most `anonymous_max_bytes` until the application lifts the bound
    to uvicorn's `ws_max_size` (`lift_message_limit`).

    websockets checks a frame's length in its header, before it buffers the payload: a
    client without a key is refused a larger message with 1009 for the price of a header,
    instead of making the server hold and decode up to `ws_max_size` first.
    """

    def __init__(self, *args: Any, anonymous_max_bytes: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn.max_message_size = anonymous_max_bytes

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # set when the handshake was accepted
        if scope is not None:
            cast("dict[str, Any]", scope["extensions"])[LIFT_MESSAGE_LIMIT] = self._lift

    def _lift(self) -> None:
        self.conn.max_message_size = self.config.ws_max_size


def lift_message_limit(scope: Scope) -> None:
    """Let a WebSocket whose caller is known send messages as large as a request body."""
    lift = scope.get("extensions", {}).get(LIFT_MESSAGE_LIMIT)
    if lift is not None:
        lift()


class HeadHeld:
    """The connection's transport, with a final response's head held back for its body.

    Interim responses (`100 Continue`, `101 Switching Protocols`) go out at once: the
    client waits for them before it sends anything more.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data.startswith(b"HTTP/1.1 ") and data[9:10] != b"1" and data.endswith(b"\r\n\r\n"):
            self._held = data
            self._loop.call_soon(self._flush)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """Given to uvicorn as `http=` (server_options): httptools parsing, one write per small
    response, a request head bounded in size and in time, and at most `in_flight.limit` HTTP
    requests in flight in the process.

    httptools buffers a header until it is complete, so an unfinished 5 MB header costs
    5 MB: the bytes of an unfinished head are counted as they arrive and refused with 431
    past `max_head_bytes`. A client gets `head_timeout_s` from connecting, or from its next
    byte on a kept-alive connection, to finish its head; then it is closed (slowloris).

    A request takes a slot when it is handed to the application and gives it back when its
    response is complete or the application is done with it, whichever comes first (a
    stream: once it has started). A mutation whose client has gone keeps its slot until it
    ends. A request that finds every slot taken is answered 503 by the protocol itself: no
    scope reaches the application, no task is made; its connection is read again once the
    answer's `Retry-After` has passed.
    """

    def __init__(
        self,
        *args: Any,
        max_head_bytes: int,
        head_timeout_s: float,
        in_flight: InFlight,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._max_head_bytes = max_head_bytes
        self._head_timeout_s = head_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_pending = False  # a head has begun and is not complete
        self._head_bytes = 0  # bytes read since it began (at least its own)
        self._read_bytes = 0  # the current read's size
        self._read_shared = False  # whether the current read also ended an earlier request
        self._refused = False  # answered 431 or 503: what still comes is dropped
        self._in_flight = in_flight
        self._release: Callable[[], None] | None = None  # the slot of the request answered
        self._hold: asyncio.TimerHandle | None = None  # reading paused after a 503 until then

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        held = HeadHeld(transport, asyncio.get_running_loop())
        super().connection_made(held)  # type: ignore[arg-type]
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # Nobody will read the answer: the work on it (its SQL included) stops now.
            scope = cast("dict[str, Any]", cycle.scope)  # the ASGI scope, with Herald's keys
            task = scope.pop(CANCEL_ON_DISCONNECT, None)
            if task is not None:
                scope[DISCONNECTED] = True
                task.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:  # after a 431 or a 503: read and dropped until the connection closes
            return
        if self.timeout_keep_alive_task is not None:  # idle until now: a new head starts
            self._start_head_timer()
        self._read_bytes = len(data)
        self._read_shared = False
        if self._head_pending:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._head_pending and self._head_bytes > self._max_head_bytes:
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_pending = True
        # The whole read counts, unless it also held the end of an earlier request
        # (pipelining): the head's share of it is unknown then, and it is left out.
        self._head_bytes = 0 if self._read_shared else self._read_bytes

    # After a refusal the parser goes on through the rest of the read it was given (a body,
    # more pipelined requests): nothing of it reaches the application.

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._read_shared = True
        super().on_message_complete()

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._head_pending = False
        self._stop_head_timer()
        # Measured only when this read and the ones before could hold a head too large.
        if self._head_bytes + self._read_bytes > self._max_head_bytes:
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > self._max_head_bytes:
                self._refuse_head()
                return
        super().on_headers_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """Where uvicorn hands a request to the application, at once or once the response
        before it on a pipelined connection is complete (WebSockets never come here): the
        request takes a slot, or finds every slot taken and is shed."""
        scope = cast("dict[str, Any]", cycle.scope)
        if scope["raw_path"] in EXEMPT:
            super()._start_asgi_task(cycle, app)
            return
        in_flight = self._in_flight
        if in_flight.count >= in_flight.limit:
            cycle.response_complete = True
            # Kept open unless requests are queued behind it (answered by the 503 and its
            # close), or the client asked for a close or waits to be told to send its body.
            close = bool(self.pipeline) or not cycle.keep_alive or cycle.waiting_for_100_continue
            for queued, _ in self.pipeline:
                queued.response_complete = True
            self.pipeline.clear()
            self._shed(scope, close)
            return
        in_flight.count += 1
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                in_flight.count -= 1

        scope[RELEASE] = self._release = release  # for a stream that has started, too

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await app(scope, receive, send)
            finally:
                release()

        super()._start_asgi_task(cycle, cast("Any", counted))  # uvicorn's own ASGI types

    def on_response_complete(self) -> None:
        # The answer is out: the slot is free for the request pipelined behind it, which
        # uvicorn starts now, while this one's application may still be returning.
        if self._release is not None:
            self._release()
            self._release = None
        super().on_response_complete()

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown, which also ends a streamed answer: uvicorn waits for
        every response to finish, and a subscription's would not. Its client reconnects, to
        another process."""
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            end = cast("dict[str, Any]", cycle.scope).get(END_STREAM)
            if end is not None:
                end()
        super().shutdown()

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:  # a WebSocket's head refused with 431 is not upgraded
            super().handle_websocket_upgrade()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # the 431 or the 503 was the answer
            super().send_400_response(msg)

    def _shed(self, scope: dict[str, Any], close: bool) -> None:
        """503 `OVERLOADED` with `Retry-After`, written here: the application never sees the
        request. uvicorn's access line is kept (its own format, as for any response). Unless
        `close`, the connection stays open and is not read until `Retry-After` has passed
        (app/http/shedding.py); the rest of this request's body is dropped then."""
        SHED_REQUESTS.inc()
        method = scope["method"]
        if self.access_log:
            self.access_logger.info(
                '%s - "%s %s HTTP/%s" %d',
                get_client_addr(scope),  # type: ignore[arg-type]
                method,
                get_path_with_query_string(scope),  # type: ignore[arg-type]
                scope["http_version"],
                503,
            )
        answer = overloaded(self.server_state.default_headers, head=method == "HEAD", close=close)
        if close:
            self._refuse(answer)
            return
        self.transport.write(answer)
        self.on_response_complete()  # uvicorn's: the keep-alive timer runs from now
        self.transport.pause_reading()
        if self._hold is not None:  # a request pipelined in the same read, shed too
            self._hold.cancel()
        self._hold = self.loop.call_later(RETRY_AFTER_S, self._end_hold)

    def _end_hold(self) -> None:
        self._hold = None
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def _refuse_head(self) -> None:
        """431 (unless a response is being written: then the connection just closes after it)."""
        if self._refused:
            return
        head = [STATUS_LINE[431]]
        head += [b"%s: %s\r\n" % pair for pair in self.server_state.default_headers]
        head.append(b"content-type: text/plain; charset=utf-8\r\n")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(_TOO_LARGE))
        self._refuse(b"".join(head) + _TOO_LARGE)

    def _refuse(self, answer: bytes) -> None:
        """`answer`, then a lingering close: closing with the rest of the request unread would
        reset the connection, and the client could lose the answer. What still comes is
        dropped until the client closes, or the head timer closes it."""
        self._refused = True
        if self.cycle is None or self.cycle.response_complete:  # not inside a response
            self.transport.write(answer)
            self.transport.write_eof()
        self._start_head_timer()

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self.shutdown()  # uvicorn's: closed now, or after a response still being written
