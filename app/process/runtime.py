"""Process-wide resources opened by the app's lifespan and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.api_keys.auth import CallerCache
from app.cache import CacheService, open_redis
from app.config import Settings
from app.db.engine import SerializedSession, create_engine, create_sessionmaker
from app.db.reads import ReadPool
from app.http.persisted import PersistedDocuments
from app.worker.jobs import Jobs, open_jobs


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[SerializedSession]
    redis: Redis
    reads: ReadPool  # read-only requests' statements (app/db/engine.py)
    cache: CacheService = field(init=False)
    callers: CallerCache = field(init=False)  # recent API key lookups, per process
    jobs: Jobs = field(init=False)  # enqueues dispatch work on this process's broker
    persisted: PersistedDocuments = field(init=False)  # documents named by id or hash

    def __post_init__(self) -> None:
        self.cache = CacheService(self.redis, self.settings)
        self.callers = CallerCache(self.settings.auth_cache_seconds)
        self.jobs = open_jobs(self.settings)
        self.persisted = PersistedDocuments.from_settings(self.settings)

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        if settings.redis_url is None:
            raise ValueError("HERALD_REDIS_URL: not set")
        # A request's statements are cancelled with it; none may outlive it by over 1 s.
        bound = settings.query_timeout_s + 1
        engine = create_engine(settings, bound)
        reads = ReadPool(engine, settings.db_pool_size + settings.db_max_overflow, bound)
        # Short timeouts, no retries, round trips counted: a slow Redis must degrade the
        # cache, not stall requests.
        redis = open_redis(settings.redis_url, timeout=0.05)
        return cls(settings, engine, create_sessionmaker(engine, reads), redis, reads)

    async def close(self) -> None:
        self.jobs.broker.close()
        await self.redis.aclose()
        await self.reads.close()
        await self.engine.dispose()
