"""The Dramatiq actors, thin shells around the domains' tasks, and the worker's broker.

Part of the composition root: the worker process (app/worker/process.py) and `herald dev`
build their broker here. Each actor runs on the worker process's event loop with that
process's dependencies (app/deps.py), built lazily on that loop.
"""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

from app.campaigns import tasks as campaigns
from app.config import Settings
from app.contacts import tasks as contacts
from app.db.engine import create_engine, create_sessionmaker
from app.db.redis_clients import worker_redis
from app.deps import Deps
from app.messages import tasks as messages
from app.stats import tasks as stats
from app.whatsapp import build_provider
from app.worker import jobs as names
from app.worker.broker import actor, build_broker
from app.worker.jobs import Jobs
from app.worker.middleware import PrefetchPerThread, Recovery


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


def declare_actors(broker: dramatiq.Broker, deps: Callable[[], Deps]) -> list[dramatiq.Actor]:
    """Declare every actor on `broker`; `deps` gives the tasks their dependencies."""

    @actor(broker, names.MATERIALIZE)
    async def materialize(campaign_id: int) -> None:
        await campaigns.materialize(deps(), campaign_id)

    @actor(broker, names.SEND_BATCH)
    async def send_batch(campaign_id: int) -> None:
        await messages.send_batch(deps(), campaign_id)

    # A retried sweep keeps its token, so a retry continues its chain rather than forking one.
    @actor(broker, names.SWEEP)
    async def sweep(campaign_id: int, token: str) -> None:
        await campaigns.sweep(deps(), campaign_id, token)

    @actor(broker, names.START_SCHEDULED)
    async def start_scheduled(campaign_id: int) -> None:
        await campaigns.start_scheduled(deps(), campaign_id)

    @actor(broker, names.VERIFY_CONTACTS)
    async def verify_contacts(contact_ids: list[int]) -> None:
        await contacts.verify_contacts(deps(), contact_ids)

    return [materialize, send_batch, sweep, start_scheduled, verify_contacts]


def build_worker_broker(settings: Settings) -> dramatiq.Broker:
    """A worker's broker: its own middleware, and every actor declared on it."""
    broker = build_broker(settings, extra=[PrefetchPerThread()])
    deps = LazyDeps(settings, broker)

    async def recovery_round() -> None:
        await campaigns.recover(deps())
        await stats.fold_counters(deps())

    broker.add_middleware(Recovery(recovery_round, settings.dispatch_recovery_interval_s))
    declare_actors(broker, deps)
    return broker
