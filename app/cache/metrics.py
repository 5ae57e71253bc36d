"""The cache's hit, miss, error and invalidation counters, per namespace."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.cache.keys import NAMESPACES
from app.observability.metrics import CACHE_EVENTS


@dataclass
class NamespaceMetrics:
    """One namespace's counters in this service, each also added to its Prometheus series
    (app/observability/metrics.py), which /metrics sums over every API process of the host."""

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
