"""Load shedding: a bound on the HTTP requests one process works on at once.

Past the bound, more concurrency only makes every request slower: the event loop and the
database pool are shared, so a burst of 64 connections used to take longer per request
than the clients would wait, and the work of abandoned requests went on to their time limit.
A request over the bound is answered 503 with `Retry-After`, in the GraphQL error shape
clients already handle, by uvicorn's protocol (app/http/protocol.py) as soon as its head is
parsed: before its body is read, and without an ASGI task, so a refusal costs next to nothing
however loaded the process is. The connection stays open, and what its client sends next is
read once `Retry-After` has passed: a client that asks again at once (load generators do,
and retry loops without a backoff) waits as told instead of being refused again and again,
and does not come back on a new connection either (a close made it reconnect at once, and
the new connections queued before the server could answer anyone).

A streamed answer (a subscription over SSE or multipart) gives its slot back once it has
started (`release_in_flight`): it would hold it for its whole life otherwise, and a few open
streams would refuse everything else. Streams have caps of their own (app/live/hub.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from starlette.types import Scope

# Probes and metrics answer whatever the load: they are how an operator sees it. Matched on
# the request's raw path, so they need no parsing of their own.
EXEMPT = frozenset({b"/healthz", b"/readyz", b"/metrics"})
RETRY_AFTER_S = 1
_BODY = orjson.dumps(
    {
        "errors": [
            {
                "message": "the server is at capacity: retry after the given seconds",
                "extensions": {"code": "OVERLOADED", "retryAfter": RETRY_AFTER_S},
            }
        ]
    }
)
_HEADERS = b"content-type: application/json\r\ncontent-length: %d\r\nretry-after: %d\r\n" % (
    len(_BODY),
    RETRY_AFTER_S,
)
_STATUS_LINE = b"HTTP/1.1 503 Service Unavailable\r\n"

# The scope's key for the callable that gives the request's slot back before it ends.
RELEASE = "herald.release_in_flight"


class InFlight:
    """The HTTP requests a process is working on, shared by all its connections; at most
    `limit` (WebSockets are bounded by their own caps)."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0


def overloaded(default_headers: Iterable[tuple[bytes, bytes]], *, head: bool, close: bool) -> bytes:
    """The whole 503, with the server's headers (`nosniff`, the date); no body for HEAD;
    `connection: close` when the connection ends with it."""
    lines = [_STATUS_LINE]
    lines += [b"%s: %s\r\n" % pair for pair in default_headers]
    lines.append(_HEADERS)
    lines.append(b"connection: close\r\n\r\n" if close else b"\r\n")
    if not head:
        lines.append(_BODY)
    return b"".join(lines)


def release_in_flight(scope: Scope) -> None:
    """The request's answer is a stream that has started: it no longer counts as in flight."""
    release = scope.pop(RELEASE, None)
    if release is not None:
        release()
