"""What every task receives: the worker process's settings, database, Redis, provider and jobs.

It sits below the domains: their tasks take a Deps and enqueue through `deps.jobs`, so no
domain imports the worker (app/worker/) or the actors that run its tasks (app/actors.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
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
