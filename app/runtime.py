"""Process-wide resources opened by the app's lifespan and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import create_engine, create_sessionmaker


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis

    @classmethod
    def open(cls, settings: Settings) -> Runtime:
        if settings.redis_url is None:
            raise ValueError("HERALD_REDIS_URL: not set")
        engine = create_engine(settings)
        # Short timeouts: a slow Redis must degrade the cache, not stall requests.
        redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=0.05,
            socket_connect_timeout=0.05,
            health_check_interval=0,
            retry_on_timeout=False,
        )
        return cls(settings, engine, create_sessionmaker(engine), redis)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()
