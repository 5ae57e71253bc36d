"""Server information queries."""

from __future__ import annotations

import strawberry

from app import __version__
from schema.context import Info
from schema.permissions import admin


@strawberry.type(description="One cache namespace's counters since this API process started.")
class CacheNamespaceMetrics:
    namespace: str
    hits: int
    misses: int
    errors: int = strawberry.field(description="Lookups or writes that met a failing Redis.")
    invalidations: int
    hit_rate: float = strawberry.field(description="hits / (hits + misses); 0 before any lookup.")


@strawberry.type(description="Field-level Redis cache counters of the API process answering.")
class CacheMetrics:
    redis_available: bool
    namespaces: list[CacheNamespaceMetrics]


@strawberry.type
class SystemQuery:
    @strawberry.field(description="Herald's version.")
    def version(self) -> str:
        return __version__

    @strawberry.field(
        description="Cache hits, misses, errors and hit rate per namespace.", extensions=admin()
    )
    def cache_metrics(self, info: Info) -> CacheMetrics:
        service = info.context.cache.service
        return CacheMetrics(
            redis_available=service.available,
            namespaces=[
                CacheNamespaceMetrics(
                    namespace=namespace,
                    hits=m.hits,
                    misses=m.misses,
                    errors=m.errors,
                    invalidations=m.invalidations,
                    hit_rate=m.hit_rate,
                )
                for namespace, m in service.metrics.namespaces.items()
            ],
        )
