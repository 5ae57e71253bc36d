"""The cache service, one per process: reads, fills, invalidations, and degraded mode.

Degraded mode. A failed or timed-out command opens a circuit for `retry_after` seconds:
lookups skip Redis and compute from PostgreSQL, one warning per outage. After the window a
single caller probes again. Invalidations that could not reach Redis are replayed in front
of the first command that does. A generation that is missing (never bumped, or flushed
together with the values) reads as 0; run Redis with a `volatile-*` or `noeviction` policy so
generation counters, which have no TTL, are never evicted while values survive.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.cache.codec import MISS, Stamp, pack, unpack
from app.cache.keys import Entry, Scope, gen_key, guard
from app.cache.metrics import CacheMetrics
from app.config import Settings
from app.observability.metrics import CACHE_REDIS_UP

# The package's name, as before it was split: log configuration and filters keep working.
logger = logging.getLogger(__package__)

T = TypeVar("T")
# How fill() claims a key, as computed under a stamp, across processes (None: Redis could
# not say) and stores what it computed (None: nothing storable), releasing the lock token it
# holds (None: none held).
Lock = Callable[[Entry, Stamp, str], Awaitable[bool | None]]
Store = Callable[[Entry, Stamp, bytes | None, str | None], Awaitable[None]]

_DOWN: Any = object()  # a command that was skipped or failed
_FAILED: Any = object()  # a fill whose leader raised: followers compute for themselves

_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
_REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class NotCacheable(Exception):
    """The computed value cannot be encoded; it is returned but not stored."""

    def __init__(self, value: object) -> None:
        super().__init__("value is not JSON-encodable")
        self.value = value


class CacheService:
    """One per process: the Redis client, the circuit breaker, in-flight fills, metrics."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        *,
        retry_after: float = 1.0,
        lock_ms: int = 2_000,
        lock_wait: float = 0.5,
        poll_interval: float = 0.02,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.retry_after = retry_after
        self.lock_ms = lock_ms
        self.lock_wait = lock_wait
        self.poll_interval = poll_interval
        self.metrics = CacheMetrics()
        CACHE_REDIS_UP.set(1)
        self._down_until = 0.0
        self._outage = False
        self._pending: set[str] = set()  # generation keys whose INCR did not reach Redis
        self._inflight: dict[tuple[str, Stamp], asyncio.Future[Any]] = {}
        self._writes: dict[str, asyncio.Task[None]] = {}  # value key -> its write in flight
        self._tokens = (f"{os.getpid()}:{n}" for n in itertools.count())

    @property
    def available(self) -> bool:
        return not self._outage

    # Circuit breaker ---------------------------------------------------------------------

    def _usable(self) -> bool:
        if not self._outage:
            return True
        now = time.monotonic()
        if now < self._down_until:
            return False
        self._down_until = now + self.retry_after  # this caller probes; others keep skipping
        return True

    def _failed(self, exc: BaseException, namespaces: Sequence[str]) -> None:
        for namespace in namespaces:
            self.metrics[namespace].error()
        self._down_until = time.monotonic() + self.retry_after
        if not self._outage:
            self._outage = True
            CACHE_REDIS_UP.set(0)
            logger.warning(
                "Redis cache unavailable (%s: %s): serving from PostgreSQL, probing every %.1f s",
                type(exc).__name__,
                exc,
                self.retry_after,
            )

    def _succeeded(self) -> None:
        if self._outage:
            self._outage = False
            CACHE_REDIS_UP.set(1)
            logger.warning("Redis cache available again")

    async def _run(self, op: Callable[[], Awaitable[T]], namespaces: Sequence[str]) -> T | Any:
        if not self._usable():
            return _DOWN
        try:
            result = await op()
        except _REDIS_FAILURES as exc:
            self._failed(exc, namespaces)
            return _DOWN
        self._succeeded()
        return result

    # Reads -------------------------------------------------------------------------------

    async def read_many(
        self, entries: Sequence[Entry], gens: dict[str, int]
    ) -> list[tuple[Any, Stamp | None]]:
        """One round trip: unknown generations and all values in one MGET.

        `gens` is the request's snapshot; it is filled in so later reads of the same request
        validate against the same generations. A None stamp means Redis is unavailable.
        """
        writes = [self._writes[e.key] for e in entries if e.key in self._writes]
        if writes:  # read this process's own fresh values, not the state before them
            await asyncio.wait(writes)
        wanted = sorted({g for e in entries for g in e.gen_keys if g not in gens})
        keys = [guard(k) for k in (*wanted, *(e.key for e in entries))]
        pending = sorted(self._pending)

        async def op() -> list[bytes | None]:
            if not pending:
                return await self.redis.mget(keys)  # type: ignore[return-value]
            pipe = self.redis.pipeline(transaction=False)
            for key in pending:
                pipe.incr(guard(key))
            pipe.mget(keys)
            return (await pipe.execute())[-1]

        raw = await self._run(op, [e.namespace for e in entries])
        if raw is _DOWN:
            return [(MISS, None)] * len(entries)
        self._pending.difference_update(pending)
        for key, value in zip(wanted, raw, strict=False):
            gens[key] = int(value) if value is not None else 0
        results: list[tuple[Any, Stamp | None]] = []
        for entry, value in zip(entries, raw[len(wanted) :], strict=True):
            stamp = tuple(gens[g] for g in entry.gen_keys)
            results.append((MISS if value is None else unpack(value, stamp), stamp))
        return results

    async def lock_many(self, claims: Sequence[tuple[Entry, Stamp, str]]) -> list[bool | None]:
        """Claim the right to fill each entry under its stamp (True), see it claimed (False),
        or None if down."""

        async def op() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for entry, stamp, token in claims:
                pipe.set(guard(entry.lock_key(stamp)), token, nx=True, px=self.lock_ms)
            return await pipe.execute()

        result = await self._run(op, [e.namespace for e, _, _ in claims])
        if result is _DOWN:
            return [None] * len(claims)
        return [bool(r) for r in result]

    async def store_many(
        self, items: Sequence[tuple[Entry, Stamp, bytes | None, str | None]]
    ) -> None:
        """Write values (payload None: only release) and release the locks we hold."""

        async def op() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for entry, stamp, payload, token in items:
                if payload is not None:
                    pipe.set(guard(entry.key), payload, ex=entry.ttl)
                if token is not None:
                    pipe.eval(_UNLOCK, 1, guard(entry.lock_key(stamp)), token)
            await pipe.execute()

        await self._run(op, [e.namespace for e, _, payload, _ in items if payload is not None])

    async def _await_other(self, entry: Entry, stamp: Stamp) -> Any:
        """Another process is filling: poll briefly for its value, then give up (MISS)."""
        deadline = time.monotonic() + self.lock_wait

        async def op() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(guard(entry.key))
            pipe.exists(guard(entry.lock_key(stamp)))
            return await pipe.execute()

        while time.monotonic() < deadline:
            await asyncio.sleep(self.poll_interval)
            result = await self._run(op, [entry.namespace])
            if result is _DOWN:
                return MISS
            raw, locked = result
            if raw is not None and (value := unpack(raw, stamp)) is not MISS:
                return value
            if not locked:  # the holder finished without a usable value, or died
                return MISS
        return MISS

    # Fills -------------------------------------------------------------------------------

    async def fill(
        self,
        entry: Entry,
        stamp: Stamp,
        compute: Callable[[], Awaitable[Any]],
        lock: Lock,
        store: Store,
    ) -> tuple[Any, bool]:
        """Compute a missed value once per process and once per lock window across processes.

        Returns (value, computed_by_this_call). Callers that joined another fill get the
        shared JSON value and must not mutate it.
        """
        flight = (entry.key, stamp)
        running = self._inflight.get(flight)
        if running is not None:
            value = await asyncio.shield(running)
            if value is not _FAILED:
                return value, False
            return await compute(), True
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[flight] = future
        outcome: Any = _FAILED
        try:
            outcome, computed = await self._lead(entry, stamp, compute, lock, store)
            return outcome, computed
        finally:
            del self._inflight[flight]
            future.set_result(outcome)

    async def _lead(
        self,
        entry: Entry,
        stamp: Stamp,
        compute: Callable[[], Awaitable[Any]],
        lock: Lock,
        store: Store,
    ) -> tuple[Any, bool]:
        token: str | None = next(self._tokens)
        assert token is not None
        claimed = await lock(entry, stamp, token)
        if claimed is False:
            value = await self._await_other(entry, stamp)
            if value is not MISS:
                return value, False
        if not claimed:
            token = None
        try:
            value = await compute()
        except BaseException:
            if token is not None:
                await store(entry, stamp, None, token)
            raise
        try:
            payload: bytes | None = pack(stamp, value)
        except TypeError:
            payload = None
        if payload is not None or token is not None:
            self._write_behind(entry, store(entry, stamp, payload, token))
        if payload is None:
            raise NotCacheable(value)
        return value, True

    def _write_behind(self, entry: Entry, write: Awaitable[None]) -> None:
        """Store a computed value (and release the fill lock) without holding up the answer.

        The value is already in hand, so the request need not wait for Redis to take it. A
        later read of the same key in this process waits for the write (`read_many`), so
        it never misses a value this process has just computed; other processes wait on
        the fill lock until the write releases it, as before.
        """
        task = asyncio.ensure_future(write)
        self._writes[entry.key] = task

        def done(finished: asyncio.Task[None]) -> None:
            if self._writes.get(entry.key) is finished:
                del self._writes[entry.key]

        task.add_done_callback(done)

    async def settle(self) -> None:
        """Wait for every write still in flight (tests, and anyone about to read Redis raw)."""
        while self._writes:
            await asyncio.wait(list(self._writes.values()))

    # Invalidation ------------------------------------------------------------------------

    async def invalidate(self, *targets: str | Scope) -> bool:
        """Bump generations (one round trip); False if Redis was unreachable (replayed later)."""
        keys = {gen_key(t) for t in targets}
        for target in targets:
            self.metrics[target.namespace if isinstance(target, Scope) else target].invalidated()
        flush = sorted(keys | self._pending)

        async def op() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for key in flush:
                pipe.incr(guard(key))
            await pipe.execute()

        namespaces = sorted({t.namespace if isinstance(t, Scope) else t for t in targets})
        if await self._run(op, namespaces) is _DOWN:
            self._pending |= keys
            return False
        self._pending.difference_update(flush)
        return True
