"""Redis cache for computed read models: key guard, TTLs, generations, metrics, degraded mode.

Keys. Everything lives under `cache:`; `whatsapp:`, `campaign:` and the broker's namespace
belong to other owners and `guard()` refuses them before any command is sent.
  - values:      cache:<namespace>:<name>             SET ... EX <ttl>
  - generations: cache:gen:<namespace>[:<scope>]      INCR, no TTL
  - fill locks:  cache:lock:<namespace>:<name>        SET NX PX, short-lived

Invalidation is O(1): `INCR` a namespace's (or one entity's) generation. A value is stored
as `<generations it was computed under>|<orjson payload>`, and a read fetches the current
generations in the same MGET as the values, so one round trip both reads and validates.
Values are stamped with the generations read *before* computing, so a value computed from
data a concurrent mutation has since replaced is already stale when it is written.

Degraded mode. A failed or timed-out command opens a circuit for `retry_after` seconds:
lookups skip Redis and compute from PostgreSQL, one warning per outage. After the window a
single caller probes again. Invalidations that could not reach Redis are replayed in front
of the first command that does. A generation that is missing (never bumped, or flushed
together with the values) reads as 0; run Redis with a `volatile-*` or `noeviction` policy so
generation counters, which have no TTL, are never evicted while values survive.

What invalidates what. A value is valid while every generation it was stamped with is
unchanged; the writers below bump them after their transaction commits (mutations through
schema/cache.py's helpers, workers and webhooks through app/dispatch/progress.py). The
counts themselves come from counters PostgreSQL keeps in the same transaction as every
change (app/stats), so a miss costs a few rows, never a scan.

| field (namespace[, scope])          | invalidated by                                        |
|-------------------------------------|-------------------------------------------------------|
| dashboard.recentCampaigns           | create/update/delete/start/schedule/pause/resume/     |
|   (campaigns)                       | cancel campaign, setCampaignTargets,                  |
|                                     | retryFailedMessages, deleteCategory, deleteContact;   |
|                                     | workers: scheduled start, completion, interrupted     |
|                                     | messages swept (progress with force=True)             |
| Campaign.stats, finished only       | everything above, and one campaign's progress: each   |
|   (campaigns, campaign id)          | batch, status webhook or reply (debounced to 1 s)     |
| dashboard (stats; + categories)     | every campaign and contact change above, each batch   |
| messageStats (stats)                | and webhook (debounced), opt-outs, numbers found      |
|                                     | invalid; the dashboard also any category mutation     |
| contacts pages that scan (search,   | contact mutations and imports, membership changes,    |
|   status or opt-out filter),        | opt-outs, numbers found invalid (send, webhook,       |
|   Category.contactCount (contacts)  | verifyContacts)                                       |
| categories, category (categories)   | category mutations, membership changes                |

Everything also expires by its TTL (Settings), the backstop when Redis missed a bump. The
`campaigns` list and plain or per-category `contacts` pages are not cached: an index range
read costs less than a hit, and is never stale.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

import orjson
from aiodataloader import DataLoader
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from app.config import Settings
from app.dispatch.broker import NAMESPACE as BROKER_NAMESPACE
from app.metrics import CACHE_EVENTS, CACHE_REDIS_UP

logger = logging.getLogger(__name__)

CACHE_PREFIX = "cache:"
PROTECTED_PREFIXES: tuple[str, ...] = ("whatsapp:", "campaign:", BROKER_NAMESPACE)
NAMESPACES: tuple[str, ...] = ("stats", "categories", "contacts", "campaigns")
# Sub-prefixes the service itself uses; a namespace may never be named like them.
_RESERVED = ("gen", "lock")
assert not set(NAMESPACES) & set(_RESERVED)
assert not CACHE_PREFIX.startswith(PROTECTED_PREFIXES)

T = TypeVar("T")


class ProtectedKeyError(ValueError):
    """A key outside `cache:` (or under a protected prefix) reached the cache."""


def guard(key: str) -> str:
    """Refuse any key the cache does not own; checked before every command."""
    if not key.startswith(CACHE_PREFIX) or key.startswith(PROTECTED_PREFIXES):
        raise ProtectedKeyError(f"the cache may not touch {key!r}")
    return key


def check_namespace(namespace: str) -> str:
    if namespace not in NAMESPACES:
        raise ValueError(f"unknown cache namespace {namespace!r}; expected one of {NAMESPACES}")
    return namespace


class Scope(NamedTuple):
    """One entity's generation inside a namespace (e.g. one campaign's stats)."""

    namespace: str
    id: object


def gen_key(target: str | Scope) -> str:
    if isinstance(target, Scope):
        return f"{CACHE_PREFIX}gen:{check_namespace(target.namespace)}:{target.id}"
    return f"{CACHE_PREFIX}gen:{check_namespace(target)}"


@dataclass(frozen=True, slots=True)
class Entry:
    """One cacheable value: where it lives, which generations guard it, how long it lives."""

    namespace: str
    key: str
    gen_keys: tuple[str, ...]
    ttl: int

    @classmethod
    def of(
        cls,
        namespace: str,
        name: str,
        ttl: int,
        scope: object = None,
        depends_on: tuple[str, ...] = (),
    ) -> Entry:
        gens = [gen_key(namespace), *(gen_key(other) for other in depends_on)]
        if scope is not None:
            gens.append(gen_key(Scope(namespace, scope)))
        return cls(
            namespace, f"{CACHE_PREFIX}{check_namespace(namespace)}:{name}", tuple(gens), ttl
        )

    @property
    def lock_key(self) -> str:
        return f"{CACHE_PREFIX}lock:{self.key[len(CACHE_PREFIX) :]}"


Stamp = tuple[int, ...]


class _Miss:
    def __repr__(self) -> str:
        return "MISS"


MISS: Any = _Miss()
_DOWN: Any = object()  # a command that was skipped or failed
_FAILED: Any = object()  # a fill whose leader raised: followers compute for themselves


def ttl_for(settings: Settings, namespace: str) -> int:
    """Namespace default TTLs from Settings; fields may override (lists, campaign stats)."""
    return {
        "stats": settings.cache_ttl_stats,
        "categories": settings.cache_ttl_categories,
        "contacts": settings.cache_ttl_contacts_count,
        "campaigns": settings.cache_ttl_campaigns_list,
    }.get(namespace, settings.cache_ttl_default)


def _stamp_bytes(stamp: Stamp) -> bytes:
    return ",".join(map(str, stamp)).encode()


def pack(stamp: Stamp, value: object) -> bytes:
    """`<generations>|<orjson>`; raises TypeError for values orjson cannot encode."""
    return _stamp_bytes(stamp) + b"|" + orjson.dumps(value)


def unpack(raw: bytes, stamp: Stamp) -> Any:
    """The value if it was computed under exactly these generations, else MISS."""
    head, sep, body = raw.partition(b"|")
    if not sep or head != _stamp_bytes(stamp):
        return MISS
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return MISS


# -- Round trips, counted where the bytes leave the process -------------------------------


@dataclass
class RoundTrips:
    value: int = 0


_current_trips: ContextVar[RoundTrips | None] = ContextVar("herald_redis_trips", default=None)
_total_trips = RoundTrips()


@contextmanager
def count_round_trips() -> Iterator[RoundTrips]:
    """Count Redis round trips made by this task and the tasks it spawns until exit."""
    counter = RoundTrips()
    token = _current_trips.set(counter)
    try:
        yield counter
    finally:
        _current_trips.reset(token)


def total_round_trips() -> int:
    return _total_trips.value


class _CountingConnection(AbstractConnection):
    # One send_packed_command per command or per pipeline execute: one round trip each.
    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _total_trips.value += 1
        counter = _current_trips.get()
        if counter is not None:
            counter.value += 1
        await super().send_packed_command(command, check_health)


def open_redis(url: str, *, timeout: float = 0.05) -> Redis:
    """A client that fails fast: short socket timeouts, one retry (the cache degrades).

    The one immediate retry on a connection error replaces a pooled socket that died in
    a Redis blip; without it the first command on each such socket fails. More retries
    with backoff would stall requests while Redis is really down.
    """
    redis = Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=0,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError, ConnectionError],
    )
    pool = redis.connection_pool
    base = pool.connection_class  # TCP, TLS or unix socket, as the URL chose
    pool.connection_class = type(f"Counting{base.__name__}", (_CountingConnection, base), {})
    return redis


# -- Metrics ------------------------------------------------------------------------------


@dataclass
class NamespaceMetrics:
    """One namespace's counters in this service, each also added to its Prometheus series
    (app/metrics.py), which /metrics sums over every API process of the host."""

    namespace: str
    hits: int = 0
    misses: int = 0
    errors: int = 0  # lookups or writes that met a failing Redis
    invalidations: int = 0

    def __post_init__(self) -> None:
        # Bound once (and so exported at 0 before the first event).
        self._series = {event: CACHE_EVENTS[event].labels(self.namespace) for event in CACHE_EVENTS}

    def hit(self) -> None:
        self.hits += 1
        self._series["hits"].inc()

    def miss(self) -> None:
        self.misses += 1
        self._series["misses"].inc()

    def error(self) -> None:
        self.errors += 1
        self._series["errors"].inc()

    def invalidated(self) -> None:
        self.invalidations += 1
        self._series["invalidations"].inc()

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return round(self.hits / total, 4) if total else 0.0


@dataclass
class CacheMetrics:
    """This service's counters (`cacheMetrics` answers them for the process it runs in)."""

    namespaces: dict[str, NamespaceMetrics] = field(
        default_factory=lambda: {ns: NamespaceMetrics(ns) for ns in NAMESPACES}
    )

    def __getitem__(self, namespace: str) -> NamespaceMetrics:
        return self.namespaces[namespace]


# -- The service --------------------------------------------------------------------------

_UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
_REDIS_FAILURES = (RedisError, OSError, asyncio.TimeoutError)


class NotCacheable(Exception):
    """The computed value cannot be encoded; it is returned but not stored."""

    def __init__(self, value: object) -> None:
        super().__init__("value is not JSON-encodable")
        self.value = value


async def bump_generations(redis: Redis, *targets: str | Scope) -> None:
    """Invalidate from outside a request (dispatch workers, webhooks): one pipelined INCR each."""
    pipe = redis.pipeline(transaction=False)
    for target in targets:
        pipe.incr(guard(gen_key(target)))
    await pipe.execute()


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

    def request(self) -> RequestCache:
        return RequestCache(self)

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

    async def lock_many(self, claims: Sequence[tuple[Entry, str]]) -> list[bool | None]:
        """Claim the right to fill each entry (True), see it claimed (False), or None if down."""

        async def op() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for entry, token in claims:
                pipe.set(guard(entry.lock_key), token, nx=True, px=self.lock_ms)
            return await pipe.execute()

        result = await self._run(op, [e.namespace for e, _ in claims])
        if result is _DOWN:
            return [None] * len(claims)
        return [bool(r) for r in result]

    async def store_many(self, items: Sequence[tuple[Entry, bytes | None, str | None]]) -> None:
        """Write values (payload None: only release) and release the locks we hold."""

        async def op() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for entry, payload, token in items:
                if payload is not None:
                    pipe.set(guard(entry.key), payload, ex=entry.ttl)
                if token is not None:
                    pipe.eval(_UNLOCK, 1, guard(entry.lock_key), token)
            await pipe.execute()

        await self._run(op, [e.namespace for e, payload, _ in items if payload is not None])

    async def _await_other(self, entry: Entry, stamp: Stamp) -> Any:
        """Another process is filling: poll briefly for its value, then give up (MISS)."""
        deadline = time.monotonic() + self.lock_wait

        async def op() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(guard(entry.key))
            pipe.exists(guard(entry.lock_key))
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
        lock: Callable[[Entry, str], Awaitable[bool | None]],
        store: Callable[[Entry, bytes | None, str | None], Awaitable[None]],
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
        lock: Callable[[Entry, str], Awaitable[bool | None]],
        store: Callable[[Entry, bytes | None, str | None], Awaitable[None]],
    ) -> tuple[Any, bool]:
        token: str | None = next(self._tokens)
        assert token is not None
        claimed = await lock(entry, token)
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
                await store(entry, None, token)
            raise
        try:
            payload: bytes | None = pack(stamp, value)
        except TypeError:
            payload = None
        if payload is not None or token is not None:
            self._write_behind(entry, store(entry, payload, token))
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

    async def get_or_compute(
        self,
        namespace: str,
        name: str,
        compute: Callable[[], Awaitable[Any]],
        *,
        ttl: int | None = None,
        scope: object = None,
    ) -> Any:
        """For callers outside GraphQL: a JSON-able value, cached like a field."""
        entry = Entry.of(namespace, name, ttl or ttl_for(self.settings, namespace), scope)
        return (await self.request().get_or_compute(entry, compute))[0]


class RequestCache:
    """Per request: batches every lookup, lock claim and write made in the same tick."""

    def __init__(self, service: CacheService) -> None:
        self.service = service
        self.gens: dict[str, int] = {}  # generations as this request first saw them
        self._entries: dict[str, Entry] = {}
        self._reads: DataLoader[str, tuple[Any, Stamp | None]] | None = None
        self._locks: DataLoader[tuple[Entry, str], bool | None] | None = None
        self._stores: DataLoader[tuple[Entry, bytes | None, str | None], None] | None = None
        self._invalidate: set[str | Scope] = set()

    async def lookup(
        self, entry: Entry, usable: Callable[[Any], bool] | None = None
    ) -> tuple[Any, Stamp | None]:
        """The cached value (or MISS) and the stamp a fill must carry (None: Redis down).

        A stored value that `usable` turns down counts, and is answered, as a miss.
        """
        if self._reads is None:
            self._reads = DataLoader(self._read_batch)
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

    async def get_or_compute(
        self, entry: Entry, compute: Callable[[], Awaitable[Any]]
    ) -> tuple[Any, bool]:
        value, stamp = await self.lookup(entry)
        if value is not MISS:
            return value, False
        if stamp is None:
            return await compute(), True
        try:
            return await self.fill(entry, stamp, compute)
        except NotCacheable as exc:
            return exc.value, True

    def invalidate_after_commit(
        self, on_commit: Callable[[Any], None], *targets: str | Scope
    ) -> None:
        """Collect targets; one INCR pipeline runs once the request's transaction commits."""
        first = not self._invalidate
        self._invalidate.update(targets)
        if first:

            async def run() -> None:
                await self.service.invalidate(*sorted(self._invalidate, key=str))

            on_commit(run)

    async def _read_batch(self, keys: list[str]) -> list[tuple[Any, Stamp | None]]:
        return await self.service.read_many([self._entries[k] for k in keys], self.gens)

    async def _lock(self, entry: Entry, token: str) -> bool | None:
        if self._locks is None:
            self._locks = DataLoader(self._lock_batch, cache=False)
        return await self._locks.load((entry, token))

    async def _lock_batch(self, keys: list[tuple[Entry, str]]) -> list[bool | None]:
        return await self.service.lock_many(keys)

    async def _store(self, entry: Entry, payload: bytes | None, token: str | None) -> None:
        if self._stores is None:
            self._stores = DataLoader(self._store_batch, cache=False)
        await self._stores.load((entry, payload, token))

    async def _store_batch(self, items: list[tuple[Entry, bytes | None, str | None]]) -> list[None]:
        await self.service.store_many(items)
        return [None] * len(items)
