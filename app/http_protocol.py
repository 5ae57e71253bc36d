"""uvicorn's HTTP protocol, with a response's head and body leaving in one write.

uvicorn writes the status line and headers as soon as the application starts its response,
and the body in a second write: two send() calls and two TCP segments per response, which
on a small answer cost about as much as building it. The head is held until the body's
first write, or until the end of the event loop's current step at the latest, so a
streamed response's head is not delayed behind its first chunk.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


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

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """Given to uvicorn as `http=`: httptools parsing, one write per small response."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        held = HeadHeld(transport, asyncio.get_running_loop())
        super().connection_made(held)  # type: ignore[arg-type]
