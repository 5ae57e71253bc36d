"""The shared streams' fan-out (schema/fanout.py): frames written in the publisher's own step,
the newest frame for a peer whose socket pushes back, the stream's end after its frames."""

from __future__ import annotations

import asyncio
import json

import pytest

from schema.fanout import Outlet, start_eagerly
from schema.websocket import next_frame

pytestmark = pytest.mark.asyncio


class Socket:
    """A peer's socket: records each frame; while `held` is clear, a write blocks (as a
    send meeting back-pressure waits for the transport to drain)."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.held = asyncio.Event()
        self.held.set()

    async def send(self, text: str) -> None:
        await self.held.wait()
        self.frames.append(text)


async def test_a_coroutine_that_does_not_suspend_runs_within_the_callers_step() -> None:
    # given
    socket = Socket()

    # when
    carried_on = start_eagerly(socket.send("frame"))

    # then: written before the caller awaited anything, no task made
    assert carried_on is None
    assert socket.frames == ["frame"]


async def test_a_coroutine_that_suspends_is_carried_on_by_a_task() -> None:
    # given a write that meets back-pressure
    socket = Socket()
    socket.held.clear()

    # when
    carried_on = start_eagerly(socket.send("frame"))
    assert carried_on is not None
    await asyncio.sleep(0)
    written_while_held = list(socket.frames)
    socket.held.set()
    await asyncio.wait_for(carried_on, 5)

    # then
    assert written_while_held == []
    assert socket.frames == ["frame"]


@pytest.mark.parametrize("started", [False, True], ids=["before its first step", "while waiting"])
async def test_cancelling_the_carrying_task_ends_the_coroutine_where_it_waits(
    started: bool,
) -> None:
    # given a write blocked on back-pressure
    ended: list[str] = []

    async def send() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("ended")

    carried_on = start_eagerly(send())
    assert carried_on is not None
    if started:
        await asyncio.sleep(0)

    # when
    carried_on.cancel()
    with pytest.raises(asyncio.CancelledError):
        await carried_on

    # then
    assert ended == ["ended"]


async def test_frames_carry_the_operation_id_around_the_payload_encoded_once() -> None:
    # given
    socket = Socket()
    outlet = Outlet(next_frame('op "1"'), socket.send)

    # when
    outlet.next('{"data":{"n":1}}')
    outlet.end(None)

    # then: a graphql-transport-ws `next` message, written at once
    assert [json.loads(frame) for frame in socket.frames] == [
        {"id": 'op "1"', "type": "next", "payload": {"data": {"n": 1}}}
    ]
    assert await asyncio.wait_for(outlet.finished, 5) is None


async def test_a_blocked_peer_gets_the_newest_frame_then_the_end() -> None:
    # given a peer whose first frame meets back-pressure
    socket = Socket()
    socket.held.clear()
    outlet = Outlet(next_frame("p"), socket.send)
    outlet.next('{"data":1}')

    # when three more events and the stream's end come while it is blocked
    outlet.next('{"data":2}')
    outlet.next('{"data":3}')
    outlet.next('{"data":4}')
    outlet.end([{"message": "boom"}])
    await asyncio.sleep(0)
    finished_while_blocked = outlet.finished.done()
    socket.held.set()
    end = await asyncio.wait_for(outlet.finished, 5)

    # then it skipped to the newest, and the end came only after it was written
    assert [json.loads(frame)["payload"]["data"] for frame in socket.frames] == [1, 4]
    assert not finished_while_blocked
    assert end == [{"message": "boom"}]


async def test_a_closed_outlet_writes_nothing_more() -> None:
    # given an operation completed by its client
    socket = Socket()
    outlet = Outlet(next_frame("p"), socket.send)
    outlet.next('{"data":1}')

    # when
    outlet.close()
    outlet.next('{"data":2}')

    # then
    assert [json.loads(frame)["payload"]["data"] for frame in socket.frames] == [1]


async def test_a_socket_that_fails_ends_the_outlet_with_its_error() -> None:
    # given
    async def gone(text: str) -> None:
        raise ConnectionResetError

    outlet = Outlet(next_frame("p"), gone)

    # when
    outlet.next('{"data":1}')
    outlet.next('{"data":2}')

    # then
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(outlet.finished, 5)
