"""Dramatiq actors; `herald worker` (or `dramatiq app.dispatch.actors`) loads this module.

Each actor is a thin shell around a coroutine in app.dispatch.tasks, run on the worker
process's event loop with process-wide resources (engine, Redis, provider) built lazily
on that loop.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from app.config import get_settings
from app.db import create_engine, create_sessionmaker
from app.dispatch import jobs as names
from app.dispatch import tasks
from app.dispatch.broker import actor, setup_broker
from app.dispatch.jobs import Jobs
from app.dispatch.providers import build_provider
from app.logging_filters import install_phone_masking
from app.redis_clients import worker_redis

logger = logging.getLogger(__name__)


class PrefetchPerThread(Middleware):
    """Take only as many messages as there are threads.

    Dramatiq prefetches 2 per thread by default; a send chain link runs for about a
    second, so one process could hoard every chain of a campaign while the other idles.
    """

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        worker.queue_prefetch = worker.worker_threads


class Recovery(Middleware):
    """Each worker process runs `tasks.recover` (then folds the statistics counters' rows)
    at boot and then periodically.

    In-process, not a chain of broker messages: a Redis outage can drop an enqueue, but
    not this loop, and a failed round (Redis still down) is simply tried again next time.
    """

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        threading.Thread(target=self._loop, name="herald-recovery", daemon=True).start()

    def before_worker_shutdown(self, broker: Any, worker: Any) -> None:
        self.stopping.set()

    def _loop(self) -> None:
        loop = get_event_loop_thread()
        assert loop is not None, "the AsyncIO middleware starts the event loop first"
        while not self.stopping.is_set():
            try:
                loop.run_coroutine(_recover())
            except Exception as exc:  # anything: the loop itself must survive
                logger.warning("dispatch recovery round failed, retrying: %r", exc)
            self.stopping.wait(settings.dispatch_recovery_interval_s)


# Workers log phone numbers' messages too (send failures, invalid numbers): mask them.
install_phone_masking()
settings = get_settings()
broker = setup_broker(settings, extra=[PrefetchPerThread(), Recovery()])
_deps: tasks.Deps | None = None


def deps() -> tasks.Deps:
    """This process's dependencies; must first be called on the worker's event loop."""
    global _deps
    if _deps is None:
        engine = create_engine(settings)
        _deps = tasks.Deps(
            settings=settings,
            sessionmaker=create_sessionmaker(engine),
            redis=worker_redis(settings),
            provider=build_provider(settings),
            jobs=Jobs(broker),
        )
    return _deps


async def _recover() -> None:
    await tasks.recover(deps())
    await tasks.fold_counters(deps())


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


@actor(broker, names.VERIFY_CONTACTS)
async def verify_contacts(contact_ids: list[int]) -> None:
    await tasks.verify_contacts(deps(), contact_ids)
