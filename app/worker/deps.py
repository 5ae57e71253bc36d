"""What every task receives: the worker process's settings, database, Redis, provider and jobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import dramatiq
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db.engine import create_engine, create_sessionmaker
from app.db.redis_clients import worker_redis
from app.whatsapp import build_provider
from app.whatsapp.providers import WhatsAppProvider
from app.worker.jobs import Jobs


@dataclass
class Deps:
    settings: Settings
    sessionmaker: Callable[[], AsyncSession]
    redis: Redis
    provider: WhatsAppProvider
    jobs: Jobs
    # Dispatch's clock (Unix seconds): the messaging limit's window moves with it.
    clock: Callable[[], float] = time.time


class LazyDeps:
    """A worker process's Deps, built on the first call: it must come from the worker's
    event loop, which the engine, Redis client and provider then belong to."""

    def __init__(self, settings: Settings, broker: dramatiq.Broker) -> None:
        self.settings = settings
        self.broker = broker
        self._deps: Deps | None = None

    def __call__(self) -> Deps:
        if self._deps is None:
            engine = create_engine(self.settings, self.settings.worker_statement_timeout_s)
            self._deps = Deps(
                settings=self.settings,
                sessionmaker=create_sessionmaker(engine),
                redis=worker_redis(self.settings),
                provider=build_provider(self.settings),
                jobs=Jobs(self.broker),
            )
        return self._deps
