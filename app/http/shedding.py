"""Load shedding: a bound on the HTTP requests one process works on at once.

Past the bound, more concurrency only makes every request slower: the event loop and the
database pool are shared, so a burst of 64 connections used to take longer per request
than the clients would wait, and the work of abandoned requests went on to their time limit.
A request over the bound is answered 503 with `Retry-After` at once, before its body is
read, in the GraphQL error shape clients already handle.

A streamed answer (a subscription over SSE or multipart) gives its slot back once it has
started (`release_in_flight`): it would hold it for its whole life otherwise, and a few open
streams would refuse everything else. Streams have caps of their own (app/live/hub.py).
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.observability.metrics import SHED_REQUESTS

# Probes and metrics answer whatever the load: they are how an operator sees it.
_EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
_BODY = orjson.dumps(
    {
        "errors": [
            {
                "message": "the server is at capacity: retry after the given seconds",
                "extensions": {"code": "OVERLOADED", "retryAfter": 1},
            }
        ]
    }
)
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_BODY)).encode()),
    (b"retry-after", b"1"),
    # A client that does not wait as told must connect again to be refused again.
    (b"connection", b"close"),
]


# The scope's key for the callable that gives the request's slot back before it ends.
RELEASE = "herald.release_in_flight"


def release_in_flight(scope: Scope) -> None:
    """The request's answer is a stream that has started: it no longer counts as in flight."""
    release = scope.pop(RELEASE, None)
    if release is not None:
        release()


class LoadShedding:
    """At most `limit` HTTP requests in flight (WebSockets are bounded by their own caps)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            SHED_REQUESTS.inc()
            await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY})
            return
        self.in_flight += 1
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self.in_flight -= 1

        scope[RELEASE] = release
        try:
            await self.app(scope, receive, send)
        finally:
            release()
