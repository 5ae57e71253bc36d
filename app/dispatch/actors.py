"""Dramatiq actors; `herald worker` (or `dramatiq app.dispatch.actors`) loads this module.

Each actor is a thin shell around a coroutine in app.dispatch.tasks, run on the worker
process's event loop with process-wide resources (engine, Redis, provider) built lazily
on that loop.
"""

from __future__ import annotations

from typing import Any

from dramatiq.middleware import Middleware
from redis.asyncio import Redis

from app.config import get_settings
from app.db import create_engine, create_sessionmaker
from app.dispatch import jobs as names
from app.dispatch import tasks
from app.dispatch.broker import actor, setup_broker
from app.dispatch.jobs import Jobs
from app.dispatch.providers import build_provider
from app.logging_filters import install_phone_masking


class PrefetchPerThread(Middleware):
    """Take only as many messages as there are threads.

    Dramatiq prefetches 2 per thread by default; a send chain link runs for about a
    second, so one process could hoard every chain of a campaign while the other idles.
    """

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        worker.queue_prefetch = worker.worker_threads


class RecoverOnBoot(Middleware):
    """A starting worker re-arms campaigns whose send chains died with a previous worker."""

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        Jobs(broker).recover()


# Workers log phone numbers' messages too (send failures, invalid numbers): mask them.
install_phone_masking()
settings = get_settings()
broker = setup_broker(settings, extra=[PrefetchPerThread(), RecoverOnBoot()])
_deps: tasks.Deps | None = None


def deps() -> tasks.Deps:
    """This process's dependencies; must first be called on the worker's event loop."""
    global _deps
    if _deps is None:
        engine = create_engine(settings)
        _deps = tasks.Deps(
            settings=settings,
            sessionmaker=create_sessionmaker(engine),
            redis=Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0"),
            provider=build_provider(settings),
            jobs=Jobs(broker),
        )
    return _deps


@actor(broker, names.MATERIALIZE)
async def materialize(campaign_id: int) -> None:
    await tasks.materialize(deps(), campaign_id)


@actor(broker, names.SEND_BATCH)
async def send_batch(campaign_id: int) -> None:
    await tasks.send_batch(deps(), campaign_id)


# A retried sweep keeps its token, so a retry continues its chain rather than forking one.
@actor(broker, names.SWEEP)
async def sweep(campaign_id: int, token: str) -> None:
    await tasks.sweep(deps(), campaign_id, token)


@actor(broker, names.START_SCHEDULED)
async def start_scheduled(campaign_id: int) -> None:
    await tasks.start_scheduled(deps(), campaign_id)


@actor(broker, names.RECOVER)
async def recover() -> None:
    await tasks.recover(deps())


@actor(broker, names.VERIFY_CONTACTS)
async def verify_contacts(contact_ids: list[int]) -> None:
    await tasks.verify_contacts(deps(), contact_ids)
