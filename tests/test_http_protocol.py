"""`herald serve`'s HTTP protocol (app/http/protocol.py): a response's head leaves with its
body in one write, and nothing is held longer than the event loop's current step; a request's
head is bounded in size (431) and in time (slowloris); a request past the in-flight bound is
refused (503) before the application sees it, and its connection read again once the
answer's Retry-After has passed. (Every test server runs this protocol,
so the rest of the suite covers it over real sockets.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from app.config import Settings, load_settings
from app.http.protocol import HeadHeld, server_options
from app.http.shedding import RETRY_AFTER_S
from tests.conftest import Server, serve
from tests.test_observability import scrape, value

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

    def pause_reading(self) -> None:  # a pipelined request waits for the one before
        pass

    def resume_reading(self) -> None:
        pass

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


class Switchable(Recorded):
    """A transport that records being handed to another protocol (a WebSocket's)."""

    def __init__(self) -> None:
        super().__init__()
        self.switched_to: object = None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.switched_to = protocol

    def write_eof(self) -> None:
        self.writes.append(b"<eof>")


async def test_a_websocket_head_over_the_limit_is_refused_not_upgraded() -> None:
    # given the protocol, as server_options gives it, on a connection
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the application must not see the request")

    settings = load_settings(database_url="postgresql://x@127.0.0.1/x")
    options = server_options(settings)
    config = Config(app=app, lifespan="off", **options)
    protocol = options["http"](config=config, server_state=ServerState(), app_state={})
    transport = Switchable()
    protocol.connection_made(transport)
    # when a WebSocket handshake comes whose head is too large
    big = f"X-Big: {'x' * 2 * settings.http_max_head_bytes}"
    upgrade = ("Connection: Upgrade", "Upgrade: websocket", "Sec-WebSocket-Version: 13")
    protocol.data_received(_head(*upgrade, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", big))
    # then it is answered 431, and the connection is not handed to a WebSocket
    assert transport.writes[0].startswith(b"HTTP/1.1 431 ")
    assert transport.writes[1:] == [b"<eof>"]
    assert transport.switched_to is None
    protocol.connection_lost(None)


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


async def test_a_large_body_is_not_mistaken_for_a_large_head(
    server: Server, admin_key: str
) -> None:
    # given a request whose body far exceeds the head limit, followed in the same write by
    # a second request (pipelined)
    body = b'{"query": "{ version }"' + b" " * 200_000 + b"}"
    post = (
        b"POST /graphql HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
        % (admin_key.encode(), len(body), body)
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


async def test_a_kept_alive_connection_fed_only_blank_lines_is_closed(
    impatient: Server,
) -> None:
    # when a client sends a request, then only the blank lines a parser skips between requests
    answer = await _talk(impatient.url, _head(), b"\r\n")

    # then the first is answered, and the connection closed once a head's time has passed
    assert answer.count(b"HTTP/1.1 ") == 1
    assert answer.startswith(b"HTTP/1.1 200 ")


# --- load shedding ----------------------------------------------------------------------------

QUERY = b'{"query": "{ __typename }"}'


def _post(*headers: str, body: bytes = QUERY) -> bytes:
    """A GraphQL POST's head and body (`body=b""`: its head only, announcing QUERY's size)."""
    lines = ["POST /graphql HTTP/1.1", "Host: herald", "Content-Type: application/json"]
    lines += [f"Content-Length: {len(QUERY)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _answers(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The responses in what a connection received: status, headers, body (by length)."""
    answers = []
    while data:
        head, _, data = data.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        length = int(headers.get("content-length", "0"))
        answers.append((int(status_line.split()[1]), headers, data[:length]))
        data = data[length:]
    return answers


@asynccontextmanager
async def _slot_held(url: str) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A request being worked on: the application has asked for its body (uvicorn answers
    `100 Continue` then), which it has not sent; its connection, closed on leaving."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(_post("Expect: 100-continue", body=b""))
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert interim.startswith(b"HTTP/1.1 100 ")
        yield reader, writer
    finally:
        writer.close()


async def _graphql_samples(url: str) -> tuple[float, float]:
    """From /metrics: requests /graphql answered (recorded by the application), and shed."""
    async with httpx.AsyncClient(base_url=url, timeout=WAIT) as http:
        samples = await scrape(http)
    answered = sum(
        count
        for (name, labels), count in samples.items()
        if name == "herald_request_duration_seconds_count" and ("route", "/graphql") in labels
    )
    return answered, value(samples, "herald_shed_requests_total")


@pytest.fixture
def single(settings: Settings) -> Iterator[Server]:
    """A server working on one request at a time (each test's own: a slot never given back
    fails that test only)."""
    with serve(settings.model_copy(update={"max_in_flight": 1})) as running:
        yield running


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """The next response on a connection kept open: status, headers, body (by length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    [(status, headers, _)] = _answers(head)
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), WAIT)
    return status, headers, body


async def test_a_request_past_the_bound_is_refused_before_the_application_sees_it(
    single: Server,
) -> None:
    address = urlsplit(single.url)
    async with _slot_held(single.url):
        # given the one slot taken
        answered, shed = await _graphql_samples(single.url)

        # when another request comes, on a connection it keeps alive
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        try:
            writer.write(_post("X-Request-ID: refused-one"))
            status, headers, body = await _answer(reader)
        finally:
            writer.close()

        # then it is answered 503, and its connection is kept
        assert status == 503
        assert headers["retry-after"] == "1"
        assert "connection" not in headers
        assert headers["content-type"] == "application/json"
        assert headers["x-content-type-options"] == "nosniff"
        assert "server" not in headers
        error = orjson.loads(body)["errors"][0]
        assert error["extensions"] == {"code": "OVERLOADED", "retryAfter": 1}
        # and the application never saw it: no request id given, no request recorded
        assert "x-request-id" not in headers
        assert await _graphql_samples(single.url) == (answered, shed + 1)
        # while the probes answer whatever the load
        async with httpx.AsyncClient(base_url=single.url, timeout=WAIT) as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_a_refused_client_that_asks_again_at_once_waits_the_retry_after(
    single: Server,
) -> None:
    address = urlsplit(single.url)
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        async with _slot_held(single.url):
            # given a request refused while the one slot is taken
            sent = loop.time()
            writer.write(_post())
            assert (await _answer(reader))[0] == 503
            # when its client asks again at once, on the same connection
            writer.write(_post())
        # (the slot is given back: its client has gone)

        # then the request is read only once Retry-After has passed, and answered there
        status, _, _ = await _answer(reader)
        assert loop.time() - sent >= RETRY_AFTER_S - 0.01  # the server's clock counts in ms
        while status == 503:  # the server had not seen the slot's client leave yet
            writer.write(_post())
            status, _, _ = await _answer(reader)
        assert status == 200
    finally:
        writer.close()


async def test_a_slot_is_given_back_when_the_response_is_complete(single: Server) -> None:
    # given the slot taken by a request whose body then comes
    async with _slot_held(single.url) as (reader, writer):
        writer.write(QUERY)
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        assert answer.startswith(b"HTTP/1.1 200 ")
        # when it has been answered, then the next one is answered too: the slot is free
        received = await _talk(single.url, _post("Connection: close"))
    assert [status for status, _, _ in _answers(received)] == [200]


async def test_a_slot_is_given_back_when_its_client_goes_away(single: Server) -> None:
    # given the slot taken by a request whose client then leaves before sending its body
    async with _slot_held(single.url):
        refused = await _talk(single.url, _post("Connection: close"))
    assert [status for status, _, _ in _answers(refused)] == [503]

    # when another request comes, then it is answered (once the server has seen the close)
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        [(status, _, _)] = _answers(await _talk(single.url, _post("Connection: close")))
        if status != 503:
            break
        assert asyncio.get_running_loop().time() < deadline, "the slot was never given back"
        await asyncio.sleep(0.05)
    assert status == 200


async def test_pipelined_requests_are_admitted_as_each_starts(single: Server) -> None:
    # when a client pipelines two requests: the second takes the slot the first gave back
    received = await _talk(single.url, _post() + _post("Connection: close"))
    assert [status for status, _, _ in _answers(received)] == [200, 200]

    # when the slot is taken elsewhere: a probe is answered, the request behind it refused
    async with _slot_held(single.url):
        received = await _talk(single.url, _head() + _post() + _post())
    answers = _answers(received)
    assert [status for status, _, _ in answers] == [200, 503]
    assert answers[1][1]["connection"] == "close"


async def test_a_refused_client_waiting_to_send_its_body_is_closed(single: Server) -> None:
    # given the slot taken, when a client asks to send its body (`Expect: 100-continue`)
    async with _slot_held(single.url):
        received = await _talk(single.url, _post("Expect: 100-continue", body=b""))
    # then it is refused and closed: a body it might never send cannot be told from the
    # next request
    [(status, headers, _)] = _answers(received)
    assert (status, headers["connection"]) == (503, "close")


async def test_a_head_request_past_the_bound_gets_the_503s_head_alone(single: Server) -> None:
    async with _slot_held(single.url):
        head = b"HEAD /graphql HTTP/1.1\r\nHost: herald\r\nConnection: close\r\n\r\n"
        received = await _talk(single.url, head)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nretry-after: 1\r\n" in head
    assert body == b""
