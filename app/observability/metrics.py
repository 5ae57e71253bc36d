"""Prometheus series for the API and the dispatch: everything /metrics answers.

Processes. `herald serve --workers N` answers a scrape from whichever worker accepts the
connection, so process-local counters would jump between workers. prometheus_client's
multiprocess mode fixes that: when PROMETHEUS_MULTIPROC_DIR is set (before the process
starts; one empty directory shared by every worker of the host) each worker writes its
series to files there and any worker's /metrics sums them all. `herald serve` sets it up
(emptied at each start) for any number of workers. Without the variable the series live in
this process, which is exact for one process (`herald dev`, tests).

Dispatch counters are written by Dramatiq workers, possibly on other machines, so they are
kept in Redis (one hash, `metrics:dispatch`) and read at scrape time: every API process
reports the same cluster-wide totals.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
# In multiprocess mode series are written to files and collected from there, never from a
# registry of this process; otherwise they live in this registry (not the global default,
# so importing Herald never adds series to someone else's exporter).
REGISTRY = CollectorRegistry()
_registry = None if MULTIPROCESS else REGISTRY

REQUEST_SECONDS = Histogram(
    "herald_request_duration_seconds",
    "HTTP request latency; GraphQL requests are labelled by operation name.",
    ["route", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=_registry,
)
SQL_PER_REQUEST = Histogram(
    "herald_sql_statements_per_request",
    "SQL statements (round trips) one GraphQL operation sent to PostgreSQL.",
    ["operation"],
    buckets=(0, 1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128),
    registry=_registry,
)
# livesum: the pools of the workers alive right now, added up.
_pool = {
    state: Gauge(
        f"herald_db_pool_{state}",
        help_,
        registry=_registry,
        multiprocess_mode="livesum",
    )
    for state, help_ in (
        ("size", "Connections the SQLAlchemy pool keeps (pool_size)."),
        ("checked_out", "Connections in use by a request or task."),
        ("checked_in", "Idle connections in the pool."),
        ("overflow", "Connections opened beyond pool_size (up to max_overflow)."),
    )
}
_read_pool = {
    state: Gauge(
        f"herald_db_read_pool_{state}",
        help_,
        registry=_registry,
        multiprocess_mode="livesum",
    )
    for state, help_ in (
        ("open", "Connections the read pool holds (read-only requests' statements)."),
        ("idle", "Idle connections in the read pool."),
    )
}
PLANNED_QUERIES = Counter(
    "herald_planned_queries",
    "Queries by outcome: answered by their plan, or handed over to the standard path.",
    ["outcome"],
    registry=_registry,
)
SHED_REQUESTS = Counter(
    "herald_shed_requests",
    "HTTP requests answered 503 at once: the process had HERALD_MAX_IN_FLIGHT in flight.",
    registry=_registry,
)
PROJECTION_FALLBACKS = Counter(
    "herald_projection_fallbacks",
    "Columns read without being fetched (a look-ahead missed them): one more statement each.",
    ["type"],
    registry=_registry,
)


# -- Cache and process totals -----------------------------------------------------------------

CACHE_EVENTS = {
    event: Counter(f"herald_cache_{event}", help_, ["namespace"], registry=_registry)
    for event, help_ in (
        ("hits", "Lookups served from Redis."),
        ("misses", "Lookups computed."),
        ("errors", "Redis failures met."),
        ("invalidations", "Generation bumps."),
    )
}
# livemin: 0 as soon as one live process has its cache's circuit breaker open.
CACHE_REDIS_UP = Gauge(
    "herald_cache_redis_up",
    "1 unless a cache circuit breaker is open (the lowest over live processes).",
    registry=_registry,
    multiprocess_mode="livemin",
)
REDIS_ROUND_TRIPS = Counter(
    "herald_redis_round_trips", "Redis round trips made by the API.", registry=_registry
)
SQL_STATEMENTS = Counter(
    "herald_sql_statements", "SQL statements sent by the API.", registry=_registry
)
_synced = {"redis": 0, "sql": 0}


def sync_totals(redis_round_trips: int, sql_statements: int) -> None:
    """Add what this process counted since the last call (once per request, cheap)."""
    for key, total, counter in (
        ("redis", redis_round_trips, REDIS_ROUND_TRIPS),
        ("sql", sql_statements, SQL_STATEMENTS),
    ):
        if total > _synced[key]:
            counter.inc(total - _synced[key])
            _synced[key] = total


def prepare_multiprocess_dir(path: str | os.PathLike[str]) -> str:
    """Empty `path` and export it as PROMETHEUS_MULTIPROC_DIR for the workers to come.

    Call in the parent before uvicorn starts its workers (`herald serve --workers N`): files
    left by a previous run would otherwise be summed into this one.
    """
    directory = Path(path).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return str(directory)


# -- Labels ----------------------------------------------------------------------------------

ANONYMOUS = "anonymous"
OTHER = "other"
# Operation names come from clients; a bounded set keeps a misbehaving one from growing the
# series without end (each distinct name is a new histogram).
MAX_OPERATIONS = 200
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,99}")
_operations: set[str] = set()


def operation_label(name: str | None) -> str:
    if not name:
        return ANONYMOUS
    if name in _operations:
        return name
    if not _NAME.fullmatch(name) or len(_operations) >= MAX_OPERATIONS:
        return OTHER
    _operations.add(name)
    return name


# Labelled children by label values: `labels()` resolves them anew on every call.
_request_series: dict[tuple[str, str], Any] = {}
_sql_series: dict[str, Any] = {}


def observe_request(route: str, operation: str | None, seconds: float) -> None:
    """One finished HTTP request; `operation` is None for non-GraphQL routes."""
    key = (route, "" if operation is None else operation_label(operation))
    series = _request_series.get(key)
    if series is None:
        series = _request_series[key] = REQUEST_SECONDS.labels(*key)
    series.observe(seconds)


def observe_sql(operation: str | None, statements: int) -> None:
    label = operation_label(operation)
    series = _sql_series.get(label)
    if series is None:
        series = _sql_series[label] = SQL_PER_REQUEST.labels(label)
    series.observe(statements)


def observe_pool(engine: AsyncEngine) -> None:
    """Copy the pool's state into the gauges (at each request end and at each scrape)."""
    pool = engine.pool
    size = getattr(pool, "size", None)
    if size is None:  # NullPool and friends keep nothing to report
        return
    _pool["size"].set(size())
    _pool["checked_out"].set(pool.checkedout())  # type: ignore[attr-defined]
    _pool["checked_in"].set(pool.checkedin())  # type: ignore[attr-defined]
    # QueuePool counts overflow from -pool_size: negative means "not all opened yet".
    _pool["overflow"].set(max(0, pool.overflow()))  # type: ignore[attr-defined]


# -- Dispatch counters (Redis-backed, cluster-wide) -------------------------------------------

DISPATCH_KEY = "metrics:dispatch"
PAUSES_KEY = "metrics:pauses"
OUTCOMES = ("sent", "failed", "rate_limited", "deferred")


async def record_dispatch(
    redis: Redis,
    campaign_id: int,
    *,
    sent: int = 0,
    failed: int = 0,
    rate_limited: int = 0,
    deferred: int = 0,
) -> None:
    """Count dispatch outcomes of one campaign; one round trip, call once per batch.

    sent: accepted by the provider; failed: refused or undeliverable; rate_limited: messages
    refused by the messaging limit until its window slides (each time they are), or put
    back by a slow-down error;
    deferred: put back by a retry-later error, to be sent after a wait.
    """
    counts = {"sent": sent, "failed": failed, "rate_limited": rate_limited, "deferred": deferred}
    if any(value < 0 for value in counts.values()):
        raise ValueError(f"dispatch counts must not be negative: {counts}")
    pipe = redis.pipeline(transaction=False)
    for outcome, value in counts.items():
        if value:
            pipe.hincrby(DISPATCH_KEY, f"{campaign_id}:{outcome}", value)
    if pipe:
        await pipe.execute()


async def dispatch_counts(redis: Redis) -> dict[tuple[str, str], int]:
    """(campaign id, outcome) → count, for every campaign that dispatched anything."""
    raw = await redis.hgetall(DISPATCH_KEY)
    counts: dict[tuple[str, str], int] = {}
    for field, value in raw.items():
        campaign, _, outcome = (field.decode() if isinstance(field, bytes) else field).partition(
            ":"
        )
        counts[(campaign, outcome)] = int(value)
    return counts


async def record_pauses(redis: Redis, code: str, campaigns: int) -> None:
    """Count campaigns Herald paused over a campaign-stopping error, by pause code."""
    if campaigns:
        await redis.hincrby(PAUSES_KEY, code, campaigns)


async def pause_counts(redis: Redis) -> dict[str, int]:
    raw = await redis.hgetall(PAUSES_KEY)
    return {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}


class _Snapshot(Collector):
    """Metrics read before the scrape (collectors are synchronous, Redis is not)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics


def _dispatch_families(
    counts: dict[tuple[str, str], int] | None, pauses: dict[str, int] | None
) -> list[Metric]:
    family = CounterMetricFamily(
        "herald_dispatch_messages",
        "Messages per campaign and outcome (sent, failed, rate_limited, deferred), all workers.",
        labels=["campaign", "outcome"],
    )
    for (campaign, outcome), value in sorted((counts or {}).items()):
        family.add_metric([campaign, outcome], value)
    paused = CounterMetricFamily(
        "herald_campaign_pauses",
        "Campaigns Herald paused over a Cloud API error, by pause code (TEMPLATE_PAUSED...).",
        labels=["code"],
    )
    for code, value in sorted((pauses or {}).items()):
        paused.add_metric([code.upper()], value)
    up = GaugeMetricFamily("herald_dispatch_metrics_up", "1 if Redis answered for the counters.")
    up.add_metric([], 0 if counts is None else 1)
    return [family, paused, up]


def _hit_ratio(source: CollectorRegistry) -> Metric:
    """hits / (hits + misses) per namespace, from the (summed) counters."""
    totals: dict[str, dict[str, float]] = {}
    for family in source.collect():
        if family.name in ("herald_cache_hits", "herald_cache_misses"):
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    by = totals.setdefault(sample.labels["namespace"], {})
                    by[family.name] = by.get(family.name, 0) + sample.value
    ratio = GaugeMetricFamily(
        "herald_cache_hit_ratio", "hits / (hits + misses).", labels=["namespace"]
    )
    for namespace, by in sorted(totals.items()):
        hits, misses = by.get("herald_cache_hits", 0), by.get("herald_cache_misses", 0)
        ratio.add_metric([namespace], round(hits / (hits + misses), 4) if hits + misses else 0)
    return ratio


def messaging_limit_families(tier: int | None, used: int | None) -> list[Metric]:
    """The portfolio's messaging limit (-1: unlimited) and its window now: what the API's
    `messagingLimit` shows, for alerts before campaigns start waiting."""
    limit = GaugeMetricFamily(
        "herald_messaging_limit", "Unique users per moving 24 h the portfolio may reach; -1: none."
    )
    limit.add_metric([], -1 if tier is None else tier)
    families: list[Metric] = [limit]
    if used is not None:
        reached = GaugeMetricFamily(
            "herald_messaging_limit_used", "Users reached in the messaging limit's window now."
        )
        reached.add_metric([], used)
        families.append(reached)
        if tier is not None:
            remaining = GaugeMetricFamily(
                "herald_messaging_limit_remaining",
                "Users the messaging limit's window can still take now.",
            )
            remaining.add_metric([], max(0, tier - used))
            families.append(remaining)
    return families


def observe_read_pool(open_: int, idle: int) -> None:
    _read_pool["open"].set(open_)
    _read_pool["idle"].set(idle)


async def exposition(engine: AsyncEngine, redis: Redis, more: Sequence[Metric] = ()) -> bytes:
    """Every series of /metrics in Prometheus text format, summed over this host's processes."""
    observe_pool(engine)
    if MULTIPROCESS:
        source = CollectorRegistry()
        MultiProcessCollector(source)
    else:
        source = REGISTRY
    counts: dict[tuple[str, str], int] | None
    pauses: dict[str, int] | None
    try:
        counts, pauses = await dispatch_counts(redis), await pause_counts(redis)
    except (RedisError, OSError, TimeoutError):
        counts = pauses = None  # Redis down: say so, keep the rest of the scrape
    derived = CollectorRegistry()
    derived.register(_Snapshot([_hit_ratio(source), *_dispatch_families(counts, pauses), *more]))
    return generate_latest(source) + generate_latest(derived)
