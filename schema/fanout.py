"""Shared subscriptions' fan-out: each event encoded once and written to every listener's
socket (a WebSocket, or a streamed HTTP response) in the publisher's own step."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError, GraphQLFormattedError
from strawberry.types.execution import ExecutionResult, PreExecutionError
from strawberry.utils.aio import aclosing

if TYPE_CHECKING:
    from strawberry.schema.schema import StreamResult

logger = logging.getLogger(__name__)

# A shared stream's end for its listeners: None when it completed, else its `error` payload.
StreamEnd = list[GraphQLFormattedError] | None


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


def stream_key(
    query: str, operation_name: str | None, variables: dict[str, Any] | None, key_digest: str
) -> tuple[str, ...]:
    """What makes two subscriptions the same stream, whatever their transport."""
    encoded = orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS).decode()
    return (query, operation_name or "", encoded, key_digest)


class Outlet:
    """One operation's end of a shared stream.

    Each `next` frame is the stream's payload, encoded once for all, in this operation's
    frame (`frame`: its transport's, and its id on a WebSocket), and it is written at once in
    the publisher's step: a thousand listeners cost a thousand socket writes per event, not a
    thousand task wake-ups and encodings. A peer whose socket pushes back gets the newest
    frame once it drains: a slow reader skips events, never piles them up, and never holds
    the others up. `finished` resolves once the stream has ended and every frame before its
    end is written (or with the socket's error).
    """

    def __init__(
        self, frame: Callable[[str], str], send: Callable[[str], Coroutine[Any, Any, None]]
    ) -> None:
        self._frame = frame
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
        frame = self._frame(payload)
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
