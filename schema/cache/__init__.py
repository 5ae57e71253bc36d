"""Field-level caching in the schema: `Cached(namespace, ttl=..., when=...)`.

- field.py:  the `Cached` extension and the check that permissions run first
- codec.py:  how values survive Redis; argument digests; the schema version
- trips.py:  the Redis round trips of a request (`redisRoundTrips`)

What a write invalidates is recorded by its service and applied once the request commits
(app/changes, schema/extensions.py).
"""

from schema.cache.codec import arguments_digest, decode, encode, schema_version
from schema.cache.field import Cached, CacheOrderError, check_cache_permissions
from schema.cache.trips import RedisRoundTrips

__all__ = [
    "CacheOrderError",
    "Cached",
    "RedisRoundTrips",
    "arguments_digest",
    "check_cache_permissions",
    "decode",
    "encode",
    "schema_version",
]
