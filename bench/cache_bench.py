"""Redis latency through CacheService: a hit (GET), a write (SET), a 10-field batch (MGET).

    python -m bench.cache_bench [redis-url] [iterations]

Without a URL, the benchmarks' Redis (`HERALD_BENCH_REDIS_URL`, else a redis-server of the
run's own). Each operation is one round trip on an already open connection, as on the request path.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

from app.cache import CacheService, Entry, RequestCache, open_redis
from app.config import load_settings
from bench.common import redis_url

BATCH = 10


def _row(name: str, samples: list[float]) -> str:
    samples.sort()
    median = statistics.median(samples) * 1000
    p99 = samples[int(len(samples) * 0.99) - 1] * 1000
    return f"| {name:<22} | {median:>10.3f} | {p99:>10.3f} |"


async def _measure(op: Callable[[], Awaitable[object]], iterations: int) -> list[float]:
    for _ in range(50):  # warm-up: connection, server caches
        await op()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        await op()
        samples.append(time.perf_counter() - started)
    return samples


async def main(url: str, iterations: int) -> None:
    settings = load_settings(redis_url=url)
    redis = open_redis(url)
    service = CacheService(redis, settings)
    try:
        entries = [Entry.of("stats", f"bench:{i}", ttl=60) for i in range(BATCH)]
        payload = {"total": 123_456, "sent": 120_000, "delivered": 110_000, "read": 90_000}
        stamp = (await RequestCache(service).lookup(entries[0]))[1]
        assert stamp is not None, f"Redis at {url} is not reachable"
        for entry in entries:
            await RequestCache(service).fill(entry, stamp, lambda: asyncio.sleep(0, payload))

        async def get() -> object:
            return await RequestCache(service).lookup(entries[0])

        async def set_() -> None:
            await service.store_many([(entries[0], stamp, b"0|{}", None)])

        async def mget() -> object:
            request = RequestCache(service)
            return await asyncio.gather(*(request.lookup(e) for e in entries))

        rows = [
            _row("GET (lookup, hit)", await _measure(get, iterations)),
            _row("SET (store)", await _measure(set_, iterations)),
            _row(f"MGET ({BATCH} fields, hit)", await _measure(mget, iterations)),
        ]
        print(f"Redis {url}, {iterations} iterations each, times in ms")
        print(f"| {'operation':<22} | {'median':>10} | {'p99':>10} |")
        print(f"|{'-' * 24}|{'-' * 12}|{'-' * 12}|")
        print("\n".join(rows))
        hits = service.metrics["stats"].hits
        print(f"hits counted: {hits}, errors: {service.metrics['stats'].errors}")
    finally:
        await redis.delete(*(entry.key for entry in entries))
        await redis.aclose()


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else redis_url()
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5_000
    asyncio.run(main(target, count))
