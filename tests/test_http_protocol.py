"""`herald serve`'s HTTP protocol (app/http_protocol.py): a response's head leaves with its
body in one write, and nothing is held longer than the event loop's current step. (Every
test server runs this protocol, so the rest of the suite covers it over real sockets.)"""

from __future__ import annotations

import asyncio

import pytest

from app.http_protocol import HeadHeld

pytestmark = pytest.mark.asyncio

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recorded(asyncio.Transport):
    """What reaches the socket, one entry per write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def _held(transport: Recorded) -> HeadHeld:
    return HeadHeld(transport, asyncio.get_running_loop())


async def test_head_and_body_written_once() -> None:
    sent = Recorded()
    transport = _held(sent)
    transport.write(HEAD)
    transport.write(b"{}")
    assert sent.writes == [HEAD + b"{}"]
    await asyncio.sleep(0)
    assert sent.writes == [HEAD + b"{}"]


async def test_a_head_without_body_leaves_at_the_end_of_the_step() -> None:
    # a streamed response whose first chunk comes later
    sent = Recorded()
    transport = _held(sent)
    transport.write(HEAD)
    assert sent.writes == []
    await asyncio.sleep(0)
    assert sent.writes == [HEAD]


async def test_interim_responses_are_not_held() -> None:
    sent = Recorded()
    transport = _held(sent)
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    transport.write(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n")
    assert len(sent.writes) == 2


async def test_close_sends_what_was_held_first() -> None:
    sent = Recorded()
    transport = _held(sent)
    transport.write(HEAD)
    transport.close()
    assert sent.writes == [HEAD]
    assert sent.closed
