"""Work over thousands of items, done in turns: one event loop serves every request of the
process, and a loop that runs through 10,000 items at once holds all of them back."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Items of light work (building an object, matching a row: a few µs each) between two turns
# of the event loop: a few ms.
LIGHT_TURN = 1_000


async def built_in_turns(
    items: Sequence[T], build: Callable[[T], R], turn: int = LIGHT_TURN
) -> list[R]:
    """`[build(item) for item in items]`, letting other tasks run after every `turn` items."""
    built: list[R] = []
    for start in range(0, len(items), turn):
        if start:
            await asyncio.sleep(0)
        built.extend(map(build, items[start : start + turn]))
    return built
