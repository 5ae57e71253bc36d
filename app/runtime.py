"""Process-wide resources opened by the app's lifespan and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from app.cache import CacheService, open_redis
from app.config import Settings
from app.db import SerializedSession, create_engine, create_sessionmaker


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[SerializedSession]
    redis: Redis
    cache: CacheService = field(init=False)

    def __post_init__(self) -> None:
        self.cache = CacheService(self.redis, self.settings)

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        if settings.redis_url is None:
            raise ValueError("HERALD_REDIS_URL: not set")
        engine = create_engine(settings)
        # Short timeouts, no retries, round trips counted: a slow Redis must degrade the
        # cache, not stall requests.
        redis = open_redis(settings.redis_url, timeout=0.05)
        return cls(settings, engine, create_sessionmaker(engine), redis)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()
