"""`herald serve`'s HTTP protocol (app/http/protocol.py): a response's head leaves with its
body in one write, and nothing is held longer than the event loop's current step; a request's
head is bounded in size (431) and in time (slowloris). (Every test server runs this protocol,
so the rest of the suite covers it over real sockets.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from app.config import Settings
from app.http.protocol import HeadHeld
from tests.conftest import Server, serve

pytestmark = pytest.mark.asyncio

WAIT = 60.0  # generous: the machine is shared; the assertions are about behaviour

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


# --- over a real socket ---------------------------------------------------------------------


async def _talk(url: str, data: bytes, drip: bytes = b"") -> bytes:
    """Send `data`, then `drip` every 50 ms, until the server closes the connection (or ends
    its side of it); what it answered. Fails if the server keeps it open for WAIT seconds."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(data)
    answer = asyncio.ensure_future(reader.read())  # everything up to the server's close
    deadline = asyncio.get_running_loop().time() + WAIT
    try:
        while not answer.done():
            assert asyncio.get_running_loop().time() < deadline, "the server kept it open"
            if drip and not writer.is_closing():
                writer.write(drip)
            await asyncio.wait([answer], timeout=0.05)
        try:
            return await answer
        except ConnectionResetError:  # closed while bytes were still arriving
            return b""
    finally:
        answer.cancel()
        writer.close()


def _head(*headers: str) -> bytes:
    lines = ["GET /healthz HTTP/1.1", "Host: herald", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_no_server_banner_and_no_sniffing(server: Server) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{server.url}/healthz")
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_a_head_within_the_limit_is_answered(server: Server, settings: Settings) -> None:
    # given a header that brings the head close to the limit
    padding = "x" * (settings.http_max_head_bytes - 200)

    # when
    answer = await _talk(server.url, _head(f"X-Pad: {padding}", "Connection: close"))

    # then
    assert answer.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("finished", [True, False], ids=["whole", "unfinished"])
async def test_a_head_over_the_limit_is_refused_with_431(
    server: Server, settings: Settings, finished: bool
) -> None:
    # given a header larger than the limit: whole, or never finished (a client that would
    # make the server buffer it for ever)
    big = f"X-Big: {'x' * 4 * settings.http_max_head_bytes}"
    data = _head(big) if finished else _head()[:-2] + big.encode()

    # when
    answer = await _talk(server.url, data)

    # then it is refused and the connection closed, without waiting for the head's end
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert answer.endswith(b"request headers too large")


async def test_a_large_body_is_not_mistaken_for_a_large_head(server: Server) -> None:
    # given a request whose body far exceeds the head limit, followed in the same write by
    # a second request (pipelined)
    body = b'{"query": "{ version }"' + b" " * 200_000 + b"}"
    post = (
        b"POST /graphql HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )

    # when
    answer = await _talk(server.url, post + _head("Connection: close"))

    # then both are answered
    assert answer.count(b"HTTP/1.1 200 ") == 2
    assert b'"version"' in answer


@pytest.fixture(scope="module")
def impatient(settings: Settings) -> Iterator[Server]:
    """A server giving clients 1 s for a head, and keeping idle connections for an hour (so
    only the head's bound can close one)."""
    update = {"http_head_timeout_s": 1.0, "http_keep_alive_s": 3600.0}
    with serve(settings.model_copy(update=update)) as running:
        yield running


async def test_a_connection_that_sends_nothing_is_closed(impatient: Server) -> None:
    assert await _talk(impatient.url, b"") == b""


async def test_a_head_trickled_a_byte_at_a_time_is_cut_off(impatient: Server) -> None:
    # when a client keeps sending its headers, never finishing them (slowloris)
    answer = await _talk(impatient.url, _head()[:-2] + b"X-Slow: ", drip=b"x")

    # then the server closes the connection without answering
    assert answer == b""


async def test_the_next_head_on_a_kept_alive_connection_is_bounded_too(
    impatient: Server,
) -> None:
    # when a client sends a request, then trickles the next one's head
    answer = await _talk(impatient.url, _head() + b"GET /healthz HTTP/1.1\r\nX-Slow: ", b"x")

    # then the first is answered, and the connection closed during the second
    assert answer.count(b"HTTP/1.1 ") == 1
    assert answer.startswith(b"HTTP/1.1 200 ")
