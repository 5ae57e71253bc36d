"""Loaders of the sender numbers."""

from __future__ import annotations

from collections.abc import Sequence

from app.senders.numbers import Number
from app.senders.repository import SenderRepository
from loaders.base import SessionLoader


class SenderNumberByIdLoader(SessionLoader[int, Number | None]):
    async def batch_load_fn(self, keys: Sequence[int]) -> list[Number | None]:
        found = {n.id: n for n in await SenderRepository(self.session).by_ids(keys)}
        return [found.get(key) for key in keys]
