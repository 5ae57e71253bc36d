"""Field-level caching in the schema: `Cached(namespace, ttl=..., when=...)` and invalidation.

- field.py:        the `Cached` extension and the check that permissions run first
- codec.py:        how values survive Redis; argument digests; the schema version
- invalidation.py: the helpers mutations call once they have changed data
- trips.py:        the Redis round trips of a request (`redisRoundTrips`)
"""

from app.cache import Scope
from schema.cache.codec import arguments_digest, decode, encode, schema_version
from schema.cache.field import Cached, CacheOrderError, check_cache_permissions
from schema.cache.invalidation import (
    campaign_changed,
    categories_changed,
    contacts_changed,
    invalidate_after_commit,
)
from schema.cache.trips import RedisRoundTrips

__all__ = [
    "CacheOrderError",
    "Cached",
    "RedisRoundTrips",
    "Scope",
    "arguments_digest",
    "campaign_changed",
    "categories_changed",
    "check_cache_permissions",
    "contacts_changed",
    "decode",
    "encode",
    "invalidate_after_commit",
    "schema_version",
]
