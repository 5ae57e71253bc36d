"""Long loops take turns with the other tasks of the event loop (app/turns.py)."""

from __future__ import annotations

import asyncio

import pytest

from app.turns import built_in_turns
from tests.conftest import turns_taken

pytestmark = pytest.mark.asyncio


async def test_a_list_is_built_in_order_with_a_turn_between_two_parts() -> None:
    # when: 2,500 items built 1,000 at a time, another task counting its turns
    async with turns_taken() as turns:
        built = await built_in_turns(range(2_500), str, 1_000)
        during = turns()

    # then: the other task ran once between each two parts, and nothing was lost or
    # reordered
    assert during == 2
    assert built == [str(i) for i in range(2_500)]


async def test_a_list_of_one_part_takes_no_turn() -> None:
    # given
    loop = asyncio.get_running_loop()
    ran: list[str] = []
    loop.call_soon(ran.append, "other")

    # when
    built = await built_in_turns([1, 2, 3], lambda i: i * 2, 1_000)

    # then: no other callback ran while it was built
    assert built == [2, 4, 6]
    assert ran == []
