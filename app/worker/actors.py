"""The Dramatiq actors, thin shells around the domains' tasks, and the worker's broker.

Each actor runs on the worker process's event loop with that process's dependencies,
built lazily on that loop (app/worker/deps.py).
"""

from __future__ import annotations

from collections.abc import Callable

import dramatiq

from app.campaigns import tasks as campaigns
from app.config import Settings
from app.contacts import tasks as contacts
from app.messages import tasks as messages
from app.worker import jobs as names
from app.worker.broker import actor, build_broker
from app.worker.deps import Deps, LazyDeps
from app.worker.middleware import PrefetchPerThread, Recovery


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
    broker.add_middleware(Recovery(deps))
    declare_actors(broker, deps)
    return broker
