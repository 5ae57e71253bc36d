"""The worker process's own middleware: prefetch per thread, and periodic recovery."""

from __future__ import annotations

import logging
import threading
from typing import Any

from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from app.campaigns.tasks import recover
from app.stats.tasks import fold_counters
from app.worker.deps import LazyDeps

logger = logging.getLogger(__name__)


class PrefetchPerThread(Middleware):
    """Take only as many messages as there are threads.

    Dramatiq prefetches 2 per thread by default; a send chain link runs for about a
    second, so one process could hoard every chain of a campaign while the other idles.
    """

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        worker.queue_prefetch = worker.worker_threads


class Recovery(Middleware):
    """Each worker process runs `recover` (then folds the statistics counters' rows) at
    boot and then periodically.

    In-process, not a chain of broker messages: a Redis outage can drop an enqueue, but
    not this loop, and a failed round (Redis still down) is simply tried again next time.
    """

    def __init__(self, deps: LazyDeps) -> None:
        self.deps = deps
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
                loop.run_coroutine(self._round())
            except Exception as exc:  # anything: the loop itself must survive
                logger.warning("dispatch recovery round failed, retrying: %r", exc)
            self.stopping.wait(self.deps.settings.dispatch_recovery_interval_s)

    async def _round(self) -> None:
        await recover(self.deps())
        await fold_counters(self.deps())
