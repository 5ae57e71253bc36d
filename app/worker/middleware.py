"""The worker process's own middleware: prefetch per thread, and periodic recovery."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

logger = logging.getLogger(__name__)


class PrefetchPerThread(Middleware):
    """Take only as many messages as there are threads.

    Dramatiq prefetches 2 per thread by default; a send chain link runs for about a
    second, so one process could hoard every chain of a campaign while the other idles.
    """

    def before_worker_boot(self, broker: Any, worker: Any) -> None:
        worker.queue_prefetch = worker.worker_threads


class Recovery(Middleware):
    """Each worker process runs its recovery round (app/actors.py: re-arm lost dispatch
    chains, fold the statistics counters' rows) at boot and then every `interval_s`.

    In-process, not a chain of broker messages: a Redis outage can drop an enqueue, but
    not this loop, and a failed round (Redis still down) is simply tried again next time.
    """

    def __init__(self, recover: Callable[[], Awaitable[None]], interval_s: float) -> None:
        self.recover = recover
        self.interval_s = interval_s
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
                loop.run_coroutine(self.recover())
            except Exception as exc:  # anything: the loop itself must survive
                logger.warning("dispatch recovery round failed, retrying: %r", exc)
            self.stopping.wait(self.interval_s)
