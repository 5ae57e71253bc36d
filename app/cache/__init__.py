"""Redis cache for computed read models: key guard, TTLs, generations, metrics, degraded mode.

- keys.py:    the keyspace, generations and what invalidates what; TTLs per namespace
- codec.py:   a value as stored, stamped with the generations it was computed under
- client.py:  the fail-fast Redis client and its round-trip counters
- service.py: CacheService, one per process (circuit breaker, fills, invalidation)
- request.py: RequestCache, one per request (batches a tick's commands)
- metrics.py: hits, misses, errors and invalidations per namespace
"""

from app.cache.client import count_round_trips, open_redis, total_round_trips
from app.cache.codec import MISS, Stamp
from app.cache.keys import (
    NAMESPACES,
    Entry,
    ProtectedKeyError,
    Scope,
    bump_generations,
    check_namespace,
    guard,
    ttl_for,
)
from app.cache.request import RequestCache
from app.cache.service import CacheService, NotCacheable

__all__ = [
    "MISS",
    "NAMESPACES",
    "CacheService",
    "Entry",
    "NotCacheable",
    "ProtectedKeyError",
    "RequestCache",
    "Scope",
    "Stamp",
    "bump_generations",
    "check_namespace",
    "count_round_trips",
    "guard",
    "open_redis",
    "total_round_trips",
    "ttl_for",
]
