"""CacheService and the `Cached` field extension against real Redis, on a test-only schema."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import pytest
import pytest_asyncio
import strawberry
from redis.asyncio import Redis
from strawberry.tools import merge_types

from app.cache import (
    MISS,
    CacheService,
    Entry,
    ProtectedKeyError,
    RequestCache,
    Scope,
    count_round_trips,
    guard,
    open_redis,
)
from app.changes import Changes
from app.changes.apply import apply_changes
from app.config import Settings
from schema.cache import Cached, arguments_digest, decode, encode, schema_version

pytestmark = pytest.mark.asyncio

# The app's 50 ms socket timeout (fail fast, degrade) is tested in test_cache_degraded.py;
# here Redis is up, and a loaded machine must not turn a slow connect into a degraded cache.
CLIENT_TIMEOUT_S = 5.0

# -- A test-only schema: five cached root fields over in-memory "database" rows -----------

DB: dict[str, Any] = {}
CALLS: Counter[str] = Counter()
DELAY: dict[str, float] = {}


class Phase(Enum):
    SENDING = "sending"
    COMPLETED = "completed"


@strawberry.type
class Totals:
    total: int
    phase: Phase
    at: datetime
    _lazy: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field
    def double(self) -> int:  # a resolver field: runs again on the rebuilt object
        return self.total * 2

    @strawberry.field
    async def lazy(self) -> int:
        return await self._lazy()


@strawberry.type
class Item:
    id: strawberry.ID
    name: str

    @strawberry.field(extensions=[Cached("contacts")])
    async def member_count(self) -> int:
        CALLS["member_count"] += 1
        return int(DB["members"][self.id])


@strawberry.type
class Run:
    id: strawberry.ID
    status: Phase

    @strawberry.field(
        extensions=[
            Cached(
                "campaigns",
                ttl=lambda s: s.cache_ttl_campaign_stats,
                scope=lambda run: run.id,
                when=lambda run, _: run.status is Phase.COMPLETED,
            )
        ]
    )
    async def stats(self) -> int:
        CALLS[f"stats:{self.id}"] += 1
        return int(DB["run_stats"][self.id])


async def _count() -> int:
    CALLS["count"] += 1
    return int(DB["count"])


@strawberry.type
class Query:
    @strawberry.field(extensions=[Cached("stats", thunk_fields=frozenset({"lazy"}))])
    async def totals(self) -> Totals:
        CALLS["totals"] += 1
        if DELAY.get("totals"):
            await asyncio.sleep(DELAY["totals"])
        return Totals(
            total=DB["total"],
            phase=Phase.COMPLETED,
            at=datetime(2025, 1, 2, tzinfo=UTC),
            _lazy=_count,
        )

    @strawberry.field(extensions=[Cached("categories")])
    def items(self) -> list[Item]:  # a sync resolver works too
        CALLS["items"] += 1
        return [Item(id=strawberry.ID(k), name=v) for k, v in DB["items"].items()]

    @strawberry.field(extensions=[Cached("categories")])
    async def item(self, id: strawberry.ID) -> Item | None:
        CALLS[f"item:{id}"] += 1
        name = DB["items"].get(id)
        return None if name is None else Item(id=id, name=name)

    @strawberry.field(extensions=[Cached("contacts", ttl=lambda s: s.cache_ttl_contacts_list)])
    async def contact_page(self, first: int = 10) -> list[str]:
        CALLS["contact_page"] += 1
        return list(DB["contacts"][:first])

    @strawberry.field(extensions=[Cached("campaigns")])
    async def runs(self) -> list[Run]:
        CALLS["runs"] += 1
        return [Run(id=strawberry.ID(k), status=Phase(v)) for k, v in DB["runs"].items()]

    @strawberry.field(extensions=[Cached("stats")])
    async def broken(self) -> Item:  # an attribute that cannot be stored
        CALLS["broken"] += 1
        item = Item(id=strawberry.ID("1"), name="x")
        item.name = object()  # type: ignore[assignment]
        return item


SCHEMA = strawberry.Schema(query=Query)
V = schema_version(SCHEMA)  # every key of this schema's values carries it

FIVE_FIELDS = """{
  totals { total phase at double lazy }
  items { id name }
  item(id: "2") { id name }
  contactPage(first: 2)
  runs { id status }
}"""
RUN_STATS = "{ runs { id stats } }"
BROKEN = "{ broken { name } }"


@dataclass
class FakeContext:
    """What `Cached` reads from the real Context."""

    cache: RequestCache


@pytest.fixture(autouse=True)
def data() -> None:
    CALLS.clear()
    DELAY.clear()
    DB.clear()
    DB.update(
        total=7,
        count=3,
        items={"1": "alpha", "2": "beta"},
        members={"1": 4, "2": 9},
        contacts=["+33600000001", "+33600000002", "+33600000003"],
        runs={"10": "sending", "11": "completed"},
        run_stats={"10": 5, "11": 8},
    )


@pytest.fixture
def cache_settings(settings: Settings) -> Settings:
    """Distinct TTLs so each assertion proves which setting a field used."""
    return settings.model_copy(
        update={
            "cache_ttl_stats": 61,
            "cache_ttl_categories": 122,
            "cache_ttl_contacts_count": 63,
            "cache_ttl_contacts_list": 34,
            "cache_ttl_campaigns_list": 15,
            "cache_ttl_campaign_stats": 66,
        }
    )


@pytest_asyncio.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    assert settings.redis_url is not None
    client = open_redis(settings.redis_url, timeout=CLIENT_TIMEOUT_S)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def service(redis: Redis, cache_settings: Settings) -> CacheService:
    return CacheService(redis, cache_settings)


@pytest_asyncio.fixture
async def patient(cache_settings: Settings) -> AsyncIterator[CacheService]:
    """A service whose Redis timeouts a loaded machine never reaches: every miss is real."""
    assert cache_settings.redis_url is not None
    client = open_redis(cache_settings.redis_url, timeout=5.0)
    yield CacheService(client, cache_settings)
    await client.aclose()


async def run(service: CacheService, query: str) -> tuple[Any, FakeContext]:
    context = FakeContext(cache=RequestCache(service))
    result = await SCHEMA.execute(query, context_value=context)
    assert result.errors is None, result.errors
    return result.data, context


FIVE_EXPECTED = {
    "totals": {
        "total": 7,
        "phase": "COMPLETED",
        "at": "2025-01-02T00:00:00+00:00",
        "double": 14,
        "lazy": 3,
    },
    "items": [{"id": "1", "name": "alpha"}, {"id": "2", "name": "beta"}],
    "item": {"id": "2", "name": "beta"},
    "contactPage": ["+33600000001", "+33600000002"],
    "runs": [{"id": "10", "status": "SENDING"}, {"id": "11", "status": "COMPLETED"}],
}


async def test_each_field_ttl_in_redis_is_the_setting(service: CacheService, redis: Redis) -> None:
    # given / when
    await run(service, FIVE_FIELDS)
    await run(service, RUN_STATS)
    await service.settle()  # values are written just after the answer
    # then
    expected = {
        f"cache:stats:{V}:Query.totals:_": 61,
        f"cache:categories:{V}:Query.items:_": 122,
        f"cache:contacts:{V}:Query.contactPage:_:{arguments_digest({'first': 2})}": 34,
        f"cache:campaigns:{V}:Query.runs:_": 15,
        f"cache:campaigns:{V}:Run.stats:11": 66,
    }
    for key, ttl in expected.items():
        pttl = await redis.pttl(key)
        assert ttl * 1000 - 1000 < pttl <= ttl * 1000, key
    item = f"cache:categories:{V}:Query.item:_:{arguments_digest({'id': '2'})}"
    assert 121_000 < await redis.pttl(item) <= 122_000
    # `when` was False for the sending run: nothing stored for it
    assert await redis.exists(f"cache:campaigns:{V}:Run.stats:10") == 0


async def test_nested_field_uses_namespace_default_ttl(service: CacheService, redis: Redis) -> None:
    await run(service, "{ items { memberCount } }")
    await service.settle()
    assert 62_000 < await redis.pttl(f"cache:contacts:{V}:Item.memberCount:1") <= 63_000


async def test_hit_returns_rebuilt_types_without_computing(service: CacheService) -> None:
    # given
    first, _ = await run(service, FIVE_FIELDS)
    # when
    second, _ = await run(service, FIVE_FIELDS)
    # then
    assert first == second == FIVE_EXPECTED
    assert Counter(totals=1, count=1, items=1, **{"item:2": 1}, contact_page=1, runs=1) == CALLS
    metrics = service.metrics
    assert (metrics["stats"].hits, metrics["stats"].misses) == (1, 1)
    assert (metrics["categories"].hits, metrics["categories"].misses) == (2, 2)
    assert metrics["categories"].hit_rate == 0.5


async def test_five_cached_fields_cost_one_redis_round_trip(service: CacheService) -> None:
    # given: warm values, and a connection already open
    await run(service, FIVE_FIELDS)
    # when
    with count_round_trips() as trips:
        data, _ = await run(service, FIVE_FIELDS)
    # then
    assert data == FIVE_EXPECTED
    assert trips.value == 1
    assert sum(m.hits for m in service.metrics.namespaces.values()) == 5


async def test_nested_cached_fields_of_a_list_share_one_read(service: CacheService) -> None:
    await run(service, "{ items { id memberCount } }")
    with count_round_trips() as trips:
        data, _ = await run(service, "{ items { id memberCount } }")
    assert data == {"items": [{"id": "1", "memberCount": 4}, {"id": "2", "memberCount": 9}]}
    assert trips.value == 2  # the list, then both children in one MGET
    assert CALLS["member_count"] == 2


async def test_misses_batch_their_lock_and_write_round_trips(service: CacheService) -> None:
    await run(service, "{ items { id } }")  # open the connection
    with count_round_trips() as trips:
        await run(service, FIVE_FIELDS)
        answered = trips.value
        await service.settle()
    # items hit; 4 misses: 1 read, 1 lock pipeline before answering, 1 write pipeline after
    assert (answered, trips.value) == (2, 3)


async def test_invalidation_makes_the_stale_value_unreadable(
    service: CacheService, redis: Redis
) -> None:
    # given
    await run(service, FIVE_FIELDS)
    DB["total"] = 8
    stale, _ = await run(service, "{ totals { total } }")
    assert stale == {"totals": {"total": 7}}  # still within TTL, not invalidated yet
    # when
    assert await service.invalidate("stats") is True
    fresh, _ = await run(service, "{ totals { total } }")
    # then
    assert fresh == {"totals": {"total": 8}}
    assert CALLS["totals"] == 2
    assert await redis.get("cache:gen:stats") == b"1"
    # other namespaces were not touched
    await run(service, FIVE_FIELDS)
    assert (CALLS["items"], CALLS["runs"], CALLS["contact_page"]) == (1, 1, 1)


async def test_scope_invalidates_one_entity_only(service: CacheService) -> None:
    # given: both runs completed and cached
    DB["runs"]["10"] = "completed"
    await run(service, RUN_STATS)
    DB["run_stats"].update({"10": 50, "11": 80})
    # when
    await service.invalidate(Scope("campaigns", "11"))
    data, _ = await run(service, RUN_STATS)
    # then
    assert data == {"runs": [{"id": "10", "stats": 5}, {"id": "11", "stats": 80}]}
    assert (CALLS["stats:10"], CALLS["stats:11"]) == (1, 2)


async def test_conditional_field_is_never_cached_while_sending(service: CacheService) -> None:
    for _ in range(3):
        data, _ = await run(service, RUN_STATS)
        assert data == {"runs": [{"id": "10", "stats": 5}, {"id": "11", "stats": 8}]}
    assert (CALLS["stats:10"], CALLS["stats:11"]) == (3, 1)


async def test_value_computed_before_an_invalidation_is_never_served(
    service: CacheService,
) -> None:
    """The fill carries the generations read before computing, not those at write time."""
    entry = Entry.of("stats", "race", ttl=60)
    request = RequestCache(service)
    value, stamp = await request.lookup(entry)
    assert value is MISS
    assert stamp is not None

    async def compute_then_mutation_commits() -> int:
        await service.invalidate("stats")  # lands while the old data is being read
        return 1

    await request.fill(entry, stamp, compute_then_mutation_commits)
    value, _ = await RequestCache(service).lookup(entry)
    assert value is MISS


async def test_concurrent_misses_compute_once_per_process(patient: CacheService) -> None:
    service = patient  # 20 connections open at once: no 50 ms connect timeout under load
    # given: a slow computation
    DELAY["totals"] = 0.05
    # when
    results = await asyncio.gather(*(run(service, "{ totals { total } }") for _ in range(20)))
    # then
    assert [data for data, _ in results] == [{"totals": {"total": 7}}] * 20
    assert CALLS["totals"] == 1
    assert service.metrics["stats"].misses == 20


async def test_concurrent_misses_compute_once_across_processes(
    settings: Settings, cache_settings: Settings
) -> None:
    """Two services with their own connections stand in for two API processes."""
    assert settings.redis_url is not None
    clients = [open_redis(settings.redis_url, timeout=CLIENT_TIMEOUT_S) for _ in range(2)]
    try:
        first, second = (CacheService(c, cache_settings, lock_wait=2.0) for c in clients)
        DELAY["totals"] = 0.1
        results = await asyncio.gather(
            *(run(first, "{ totals { total } }") for _ in range(5)),
            *(run(second, "{ totals { total } }") for _ in range(5)),
        )
        assert [data for data, _ in results] == [{"totals": {"total": 7}}] * 10
        assert CALLS["totals"] == 1
    finally:
        for client in clients:
            await client.aclose()


async def test_a_fill_of_an_older_generation_holds_up_no_request_of_a_newer_one(
    settings: Settings, cache_settings: Settings, redis: Redis
) -> None:
    """Two services with their own connections stand in for two API processes."""
    assert settings.redis_url is not None
    clients = [open_redis(settings.redis_url, timeout=CLIENT_TIMEOUT_S) for _ in range(2)]
    first, second = (
        CacheService(c, cache_settings, lock_ms=60_000, lock_wait=60.0) for c in clients
    )
    try:
        # given: the other process filling totals, slowly, under the current generation
        DELAY["totals"] = 60
        slow = asyncio.create_task(run(second, "{ totals { total } }"))
        deadline = time.monotonic() + 10
        while not [key async for key in redis.scan_iter("cache:lock:*")]:
            assert time.monotonic() < deadline, "the slow fill never claimed its lock"
            await asyncio.sleep(0.01)
        # when: a change moves the generation on, and a request reads totals
        assert await first.invalidate("stats")
        DELAY["totals"] = 0
        data, _ = await asyncio.wait_for(run(first, "{ totals { total } }"), 30)
        # then: it computed at once, under a lock of its own generation, and stored it
        assert data == {"totals": {"total": 7}}
        assert CALLS["totals"] == 2
        await first.settle()
        assert await redis.exists(f"cache:stats:{V}:Query.totals:_") == 1
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow
    finally:
        for client in clients:
            await client.aclose()


async def test_lock_holder_that_stores_nothing_lets_others_compute(
    service: CacheService, redis: Redis
) -> None:
    # given: another process claimed the fill and died before writing
    await redis.set(f"cache:lock:stats:{V}:Query.totals:_@0", "dead", px=100)
    # when
    data, _ = await run(service, "{ totals { total } }")
    await service.settle()
    # then: computed here after the lock expired, and stored
    assert data == {"totals": {"total": 7}}
    assert CALLS["totals"] == 1
    assert await redis.exists(f"cache:stats:{V}:Query.totals:_") == 1


async def test_uncacheable_value_still_answers_and_is_reported_once(
    service: CacheService, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="schema.cache"):
        for _ in range(3):
            context = FakeContext(cache=RequestCache(service))
            result = await SCHEMA.execute(BROKEN, context_value=context)
            assert result.errors is not None  # the resolver's own bad value, reported by GraphQL
    assert CALLS["broken"] == 3
    assert service.metrics["stats"].errors == 3
    assert len([r for r in caplog.records if "not cacheable" in r.message]) == 1
    assert await redis.exists(f"cache:stats:{V}:Query.broken:_") == 0
    assert await redis.exists(f"cache:lock:stats:{V}:Query.broken:_@0") == 0


PROTECTED = {
    "whatsapp:daily:count": b"41",
    "campaign:lock:123": b"worker-1",
    "dramatiq:default.msgs": b"payload",
    "dramatiq:__heartbeats__": b"beat",
}


async def test_protected_keys_survive_every_invalidation(
    service: CacheService, redis: Redis
) -> None:
    # given
    for key, value in PROTECTED.items():
        await redis.set(key, value, ex=3600)
    await run(service, FIVE_FIELDS)
    before = {k: await redis.pttl(k) for k in PROTECTED}
    # when
    await service.invalidate("stats", "categories", "contacts", "campaigns")
    await service.invalidate(Scope("campaigns", "11"), Scope("stats", 1))
    changes = Changes()
    changes.contacts(deleted=True)
    changes.categories(membership=True)
    await apply_changes(redis, changes, service)
    # then
    for key, value in PROTECTED.items():
        assert await redis.get(key) == value
        assert 0 < before[key] - await redis.pttl(key) < 5_000
    non_cache = {k async for k in redis.scan_iter() if not k.startswith(b"cache:")}
    assert non_cache == {k.encode() for k in PROTECTED}


@pytest.mark.parametrize(
    "key", [*PROTECTED, "dramatiq", "other:key", "cachex:stats", "whatsapp:cache:x"]
)
async def test_guard_refuses_keys_the_cache_does_not_own(key: str) -> None:
    with pytest.raises(ProtectedKeyError):
        guard(key)


async def test_guard_accepts_cache_keys() -> None:
    assert guard("cache:stats:Query.totals:_") == "cache:stats:Query.totals:_"


async def test_the_changes_of_one_request_are_one_pipeline(
    service: CacheService, redis: Redis
) -> None:
    # given: what two mutations of one request recorded
    await redis.ping()
    changes = Changes()
    changes.contacts()
    changes.categories(membership=True)
    # when
    with count_round_trips() as trips:
        await apply_changes(redis, changes, service)
    # then: each namespace bumped once, in one round trip, and no other
    assert trips.value == 1
    gens = ("cache:gen:stats", "cache:gen:contacts", "cache:gen:categories")
    assert [await redis.get(k) for k in gens] == [b"1", b"1", b"1"]
    assert await redis.get("cache:gen:campaigns") is None
    assert service.metrics["contacts"].invalidations == 1


async def test_lazy_part_is_stored_only_when_asked_for(service: CacheService) -> None:
    # given: a first request that does not select the lazy field
    await run(service, "{ totals { total } }")
    assert CALLS["count"] == 0
    # when: one that does, twice
    first, _ = await run(service, "{ totals { total lazy } }")
    second, _ = await run(service, "{ totals { ... on Totals { lazy } } }")
    # then: recomputed once with the lazy part, then served whole from the cache
    assert first == {"totals": {"total": 7, "lazy": 3}}
    assert second == {"totals": {"lazy": 3}}
    assert (CALLS["totals"], CALLS["count"]) == (2, 1)
    assert (service.metrics["stats"].hits, service.metrics["stats"].misses) == (1, 2)


async def test_codec_round_trip_keeps_types_and_forces_thunks() -> None:
    totals = Totals(
        total=5, phase=Phase.SENDING, at=datetime(2025, 3, 4, 5, 6, tzinfo=UTC), _lazy=_count
    )
    DB["count"] = 11
    rebuilt = decode(await encode([totals, None]))
    assert rebuilt[1] is None
    copy = rebuilt[0]
    assert type(copy) is Totals
    assert (copy.total, copy.phase, copy.at) == (totals.total, Phase.SENDING, totals.at)
    assert await copy._lazy() == 11


# -- Schema versions: a deploy never reads the previous code's values -----------------------


@strawberry.type
class Added:
    @strawberry.field
    def added(self) -> int:
        return 1


# The same fields plus one, as after a deploy that adds a field.
NEXT_SCHEMA = strawberry.Schema(query=merge_types("Query", (Query, Added)))


async def _run_on(schema: strawberry.Schema, service: CacheService, query: str) -> Any:
    result = await schema.execute(query, context_value=FakeContext(cache=RequestCache(service)))
    assert result.errors is None, result.errors
    return result.data


async def test_values_stored_under_one_schema_are_not_read_under_another(
    patient: CacheService, redis: Redis
) -> None:
    service = patient
    # given values stored by the current schema
    await _run_on(SCHEMA, service, FIVE_FIELDS)
    calls = CALLS.copy()

    # when the next schema (one more field) answers the same document, then the old again
    after_deploy = await _run_on(NEXT_SCHEMA, service, FIVE_FIELDS)
    before_deploy = await _run_on(SCHEMA, service, FIVE_FIELDS)

    # then the next schema computed every field itself; the old values stayed intact
    assert schema_version(NEXT_SCHEMA) != V
    assert after_deploy == before_deploy == FIVE_EXPECTED
    assert calls + calls == CALLS
    await service.settle()
    stored = {k.decode() for k in await redis.keys("cache:stats:*") if isinstance(k, bytes)}
    assert stored == {
        f"cache:stats:{schema_version(NEXT_SCHEMA)}:Query.totals:_",
        f"cache:stats:{V}:Query.totals:_",
    }


def _version_of(cls: type) -> str:
    """The version of a schema whose only field answers a `cls`."""
    root = type("Query", (), {"__annotations__": {"value": cls | None}, "value": None})
    return schema_version(strawberry.Schema(query=strawberry.type(root)))


async def test_schema_version_follows_private_attributes_and_class_names() -> None:
    # given three types with the same SDL: one adds a private attribute, one is renamed
    @strawberry.type(name="Thing")
    class Thing:
        name: str

    @strawberry.type(name="Thing")
    class WithPrivate:
        name: str
        owner_id: strawberry.Private[int]

    @strawberry.type(name="Thing")
    class Renamed:
        name: str

    # when / then: each one is a schema of its own for the cache
    versions = {_version_of(Thing), _version_of(WithPrivate), _version_of(Renamed)}
    assert len(versions) == 3
    assert _version_of(Thing) == _version_of(Thing)
