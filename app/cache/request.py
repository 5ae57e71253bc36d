"""The cache as one request sees it: lookups, lock claims and writes batched per tick."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiodataloader import DataLoader

from app.cache.codec import MISS, Stamp
from app.cache.keys import Entry
from app.cache.service import CacheService
from app.loading import ShieldedLoader


class RequestCache:
    """Per request: batches every lookup, lock claim and write made in the same tick."""

    def __init__(self, service: CacheService) -> None:
        self.service = service
        self.gens: dict[str, int] = {}  # generations as this request first saw them
        self._entries: dict[str, Entry] = {}
        # Lookups of one key share a future (ShieldedLoader); claims and writes do not.
        self._reads: ShieldedLoader[str, tuple[Any, Stamp | None]] | None = None
        self._locks: DataLoader[tuple[Entry, Stamp, str], bool | None] | None = None
        self._stores: DataLoader[tuple[Entry, Stamp, bytes | None, str | None], None] | None = None

    async def lookup(
        self, entry: Entry, usable: Callable[[Any], bool] | None = None
    ) -> tuple[Any, Stamp | None]:
        """The cached value (or MISS) and the stamp a fill must carry (None: Redis down).

        A stored value that `usable` turns down counts, and is answered, as a miss.
        """
        if self._reads is None:
            self._reads = ShieldedLoader(self._read_batch)
        self._entries[entry.key] = entry
        value, stamp = await self._reads.load(entry.key)
        metrics = self.service.metrics[entry.namespace]
        if value is not MISS and (usable is None or usable(value)):
            metrics.hit()
            return value, stamp
        metrics.miss()
        return MISS, stamp

    async def fill(
        self, entry: Entry, stamp: Stamp, compute: Callable[[], Awaitable[Any]]
    ) -> tuple[Any, bool]:
        return await self.service.fill(entry, stamp, compute, self._lock, self._store)

    async def _read_batch(self, keys: list[str]) -> list[tuple[Any, Stamp | None]]:
        return await self.service.read_many([self._entries[k] for k in keys], self.gens)

    async def _lock(self, entry: Entry, stamp: Stamp, token: str) -> bool | None:
        if self._locks is None:
            self._locks = DataLoader(self._lock_batch, cache=False)
        return await self._locks.load((entry, stamp, token))

    async def _lock_batch(self, keys: list[tuple[Entry, Stamp, str]]) -> list[bool | None]:
        return await self.service.lock_many(keys)

    async def _store(
        self, entry: Entry, stamp: Stamp, payload: bytes | None, token: str | None
    ) -> None:
        if self._stores is None:
            self._stores = DataLoader(self._store_batch, cache=False)
        await self._stores.load((entry, stamp, payload, token))

    async def _store_batch(
        self, items: list[tuple[Entry, Stamp, bytes | None, str | None]]
    ) -> list[None]:
        await self.service.store_many(items)
        return [None] * len(items)
