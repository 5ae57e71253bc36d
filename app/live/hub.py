"""Live campaign progress: one Redis pub/sub listener per API process, fanned out locally.

Workers and webhooks publish "campaign N changed" (debounced, app/campaigns/progress.py).
Each API process keeps one pub/sub connection; per watched campaign one task re-reads the
numbers from PostgreSQL (at most every `live_min_interval_ms`) and hands the same snapshot
to every local subscriber, so 1,000 subscribers cost one read per tick, not 1,000.
While the listener is down (Redis unreachable), watches fall back to periodic reads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.api_keys.repository import ApiKeyRepository
from app.campaigns.repository import CampaignRepository
from app.campaigns.waits import waiting_until
from app.config import Settings
from app.db.engine import SerializedSession
from app.live.caps import KeyCaps
from app.live.settle import Settling
from app.models.enums import CampaignStatus
from app.stats.repository import CAMPAIGN_FIELDS, StatsRepository

logger = logging.getLogger(__name__)
T = TypeVar("T")

FINAL = frozenset({CampaignStatus.COMPLETED, CampaignStatus.CANCELLED, CampaignStatus.FAILED})


def channel(redis: Redis) -> str:
    """Pub/sub channels ignore Redis database numbers: name the database in the channel."""
    db = redis.connection_pool.connection_kwargs.get("db", 0)
    return f"herald:{db}:live"


async def publish_campaign_changed(redis: Redis, campaign_id: int) -> None:
    """Tell every API process that a campaign's numbers moved.

    Not debounced here: a debounce costs the same round trip as the PUBLISH and would drop
    the trailing change; each API process throttles its reads instead (_Watch).
    """
    try:
        await redis.publish(channel(redis), f"c:{campaign_id}")
    except RedisError as exc:
        # Subscribers then see the change at their next periodic read.
        logger.warning("campaign %s live notification failed: %s", campaign_id, exc)


async def publish_key_revoked(redis: Redis, key_id: int) -> None:
    """End the revoked key's WebSocket connections on every API process now."""
    try:
        await redis.publish(channel(redis), f"k:{key_id}")
    except RedisError as exc:
        logger.warning("key %s revocation notice failed: %s", key_id, exc)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One campaign's progress as every subscriber sees it."""

    status: CampaignStatus
    counts: dict[str, int]
    messages_per_second: float
    eta_seconds: float | None
    # Why Herald paused it (code, Cloud API error code, message); Nones when it did not.
    pause: tuple[str | None, int | None, str | None] = (None, None, None)
    # Until when (Unix s) it waits for the messaging limit's window, while it does.
    waiting_until: float | None = None
    # How long ago (s) it became final, when it is (app/live/settle.py).
    ended_ago: float = 0.0
    # Final, and no late status moved its figures for a while: the stream's last event.
    settled: bool = False

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def same_state(self, other: Snapshot | None, *, settled: bool = True) -> bool:
        """Only a changed status, count or settling makes an event; the rate alone does not."""
        mine = (self.status, self.counts, settled and self.settled)
        return other is not None and mine == (other.status, other.counts, settled and other.settled)


class Mailbox(Generic[T]):
    """A subscriber's latest value: a slow reader skips to the newest, never piles up."""

    def __init__(self) -> None:
        self._value: T | None = None
        self._ready = asyncio.Event()
        self.closed = False

    def put(self, value: T) -> None:
        self._value = value
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    async def get(self) -> T | None:
        """The next value, or None once closed and read out."""
        while self._value is None:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        value, self._value = self._value, None
        return value


@dataclass
class _Watch:
    campaign_id: int
    settling: Settling
    mailboxes: set[Mailbox[Snapshot]] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    last: Snapshot | None = None
    first: asyncio.Future[Snapshot | None] | None = None  # the opening read, shared
    task: asyncio.Task[None] | None = None
    # (monotonic time, processed messages): the rate over the last few seconds.
    history: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))


class CampaignNotFound(Exception):
    pass


class CapReached(Exception):
    """A subscription refused: `which` cap ("per connection", "per API key") and its limit."""

    def __init__(self, which: str, limit: int) -> None:
        super().__init__(which, limit)
        self.which = which
        self.limit = limit


@dataclass(eq=False)  # compared and hashed by identity: one per socket
class LiveConnection:
    """One authenticated WebSocket: its key, its open subscriptions, how to close it."""

    key_id: int
    key_digest: str
    close: Callable[[int, str], Awaitable[None]]
    subscriptions: int = 0


class LiveHub:
    """The process's subscriptions: campaign watches, and the connections per API key."""

    def __init__(
        self, redis: Redis, sessionmaker: async_sessionmaker[SerializedSession], settings: Settings
    ) -> None:
        self.redis = redis
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.listening = False  # whether pub/sub notifications currently arrive
        self._watches: dict[int, _Watch] = {}
        self._connections: set[LiveConnection] = set()
        self.caps = KeyCaps(redis, settings.live_subscription_lease_s)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="live-listener"),
            asyncio.create_task(self._recheck_keys(), name="live-key-recheck"),
            asyncio.create_task(self.caps.keep_renewing(), name="live-cap-leases"),
        ]

    async def close(self) -> None:
        for task in [*self._tasks, *(w.task for w in self._watches.values() if w.task)]:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task
        await self.caps.close()

    # -- connections and caps -----------------------------------------------------------

    def add_connection(self, connection: LiveConnection) -> None:
        self._connections.add(connection)

    def remove_connection(self, connection: LiveConnection) -> None:
        self._connections.discard(connection)

    async def reserve(self, connection: LiveConnection) -> str:
        """Count one more subscription (its slot in the key's cap, app/live/caps.py), or
        raise CapReached naming the cap that refuses it."""
        per_connection = self.settings.live_max_subscriptions_per_connection
        if connection.subscriptions >= per_connection:
            raise CapReached("per connection", per_connection)
        connection.subscriptions += 1  # before the round trip: the socket's next one waits
        per_key = self.settings.live_max_subscriptions_per_key
        try:
            slot = await self.caps.take(connection.key_id, per_key)
        except BaseException:
            connection.subscriptions -= 1
            raise
        if slot is None:
            connection.subscriptions -= 1
            raise CapReached("per API key", per_key)
        return slot

    def release(self, connection: LiveConnection, slot: str) -> None:
        connection.subscriptions -= 1
        self.caps.give_back(connection.key_id, slot)

    async def _end_key(self, key_id: int) -> None:
        for connection in [c for c in self._connections if c.key_id == key_id]:
            self._connections.discard(connection)
            with suppress(Exception):
                await connection.close(4401, "API key revoked")

    async def _recheck_keys(self) -> None:
        """Revocations made where no notice reaches us (CLI, Redis down) end streams too."""
        while True:
            await asyncio.sleep(self.settings.live_key_recheck_s)
            ids = {c.key_id for c in self._connections}
            if not ids:
                continue
            try:
                async with self.sessionmaker() as session:
                    live = await ApiKeyRepository(session).live_ids(sorted(ids))
            except Exception as exc:
                logger.warning("live: key recheck failed: %s", exc)
                continue
            for key_id in ids - set(live):
                await self._end_key(key_id)

    # -- pub/sub ---------------------------------------------------------------------------

    async def _listen(self) -> None:
        """One pub/sub connection for the process; reconnects, and says when it is down."""
        # Its own client: a blocking read must not use the request client's short timeouts.
        assert self.settings.redis_url is not None
        client = Redis.from_url(
            self.settings.redis_url, socket_timeout=None, socket_connect_timeout=2.0
        )
        name = channel(self.redis)
        warned = False
        try:
            while True:
                try:
                    async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                        await pubsub.subscribe(name)
                        self._set_listening(True)
                        warned = False
                        async for message in pubsub.listen():
                            await self._on_message(message.get("data"))
                except Exception as exc:  # whatever it was, keep serving by polling
                    if not warned:
                        logger.warning("live: pub/sub unavailable (%s); polling meanwhile", exc)
                        warned = True
                    self._set_listening(False)
                    await asyncio.sleep(1.0)
        finally:
            self._set_listening(False)
            with suppress(Exception):
                await client.aclose()

    def _set_listening(self, value: bool) -> None:
        if value and not self.listening:
            # Anything may have moved while we were deaf.
            for watch in self._watches.values():
                watch.changed.set()
        self.listening = value

    async def _on_message(self, data: object) -> None:
        if not isinstance(data, bytes):
            return
        kind, _, raw = data.partition(b":")
        if not raw.isdigit():
            return
        if kind == b"c":
            watch = self._watches.get(int(raw))
            if watch is not None:
                watch.changed.set()
        elif kind == b"k":
            await self._end_key(int(raw))

    # -- watches ---------------------------------------------------------------------------

    @asynccontextmanager
    async def watch(self, campaign_id: int) -> AsyncIterator[Mailbox[Snapshot]]:
        """A mailbox that holds the current state at once, then each change; raises
        CampaignNotFound for an unknown campaign."""
        watch = self._watches.get(campaign_id)
        if watch is None:
            # The first subscriber reads; those arriving meanwhile wait for the same read.
            watch = _Watch(campaign_id, Settling.of(self.settings))
            watch.first = asyncio.ensure_future(self._read(campaign_id, watch))
            self._watches[campaign_id] = watch
        mailbox: Mailbox[Snapshot] = Mailbox()
        watch.mailboxes.add(mailbox)
        try:
            assert watch.first is not None
            first = await asyncio.shield(watch.first) if watch.last is None else watch.last
            if first is None:
                raise CampaignNotFound(campaign_id)
            if watch.last is None:
                watch.last = self._settle(watch, first)
            mailbox.put(watch.last)
            if watch.last.settled:
                mailbox.close()
            if watch.task is None:
                watch.task = asyncio.create_task(self._run(watch), name=f"live-{campaign_id}")
            yield mailbox
        finally:
            watch.mailboxes.discard(mailbox)
            if not watch.mailboxes and self._watches.get(campaign_id) is watch:
                del self._watches[campaign_id]
                if watch.task is not None:
                    watch.task.cancel()

    async def _run(self, watch: _Watch) -> None:
        """Re-read on each notification (throttled), or periodically as a safety net."""
        settings = self.settings
        min_interval = settings.live_min_interval_ms / 1000
        last_read = time.monotonic()
        while watch.mailboxes:
            # Polling is the fallback while pub/sub is down, and a slow safety net otherwise.
            timeout = settings.live_fallback_poll_s if not self.listening else settings.live_poll_s
            due = watch.settling.due()
            if due is not None:  # read again when the figures would be settled
                timeout = max(min(timeout, due - time.monotonic()), 0.0)
            with suppress(TimeoutError):
                await asyncio.wait_for(watch.changed.wait(), timeout)
            wait = last_read + min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            watch.changed.clear()
            last_read = time.monotonic()
            try:
                snapshot = await self._read(watch.campaign_id, watch)
            except Exception as exc:
                logger.warning("live: campaign %s read failed: %s", watch.campaign_id, exc)
                continue
            if snapshot is None:
                continue
            snapshot = self._settle(watch, snapshot)
            if snapshot.same_state(watch.last):
                continue
            watch.last = snapshot
            for mailbox in watch.mailboxes:
                mailbox.put(snapshot)
                if snapshot.settled:
                    mailbox.close()
            if snapshot.settled:
                return

    @staticmethod
    def _settle(watch: _Watch, snapshot: Snapshot) -> Snapshot:
        """The snapshot, marked settled once a final campaign's figures stopped moving."""
        changed = not snapshot.same_state(watch.last, settled=False)
        # Seen ending now, or (the watch's first read) ended before, as the database says.
        ended_ago = snapshot.ended_ago if watch.last is None else 0.0
        if watch.settling.observe(snapshot.final, changed, time.monotonic(), ended_ago):
            return replace(snapshot, settled=True)
        return snapshot

    async def _read(self, campaign_id: int, watch: _Watch | None) -> Snapshot | None:
        async with self.sessionmaker() as session:
            rows = await CampaignRepository(session).by_ids([campaign_id])
            if not rows:
                return None
            found = await StatsRepository(session).by_campaign_ids([campaign_id])
            # The counters (app/stats): constant time, however big the campaign.
            counts: dict[str, int] = (
                {name: getattr(found[0], name) for name in CAMPAIGN_FIELDS} if found else {}
            )
        campaign = rows[0]
        status = CampaignStatus(campaign.status)
        processed = sum(counts.get(s, 0) for s in ("sent", "delivered", "read", "failed"))
        remaining = counts.get("pending", 0) + counts.get("sending", 0)
        rate = 0.0
        if watch is not None:
            now = time.monotonic()
            watch.history.append((now, processed))
            while len(watch.history) > 2 and now - watch.history[0][0] > 10:
                watch.history.popleft()
            then, before = watch.history[0]
            if now - then > 0.2:
                rate = round((processed - before) / (now - then), 2)
        sending = status is CampaignStatus.SENDING
        waiting = await waiting_until(self.redis, campaign_id) if sending else None
        moving = rate > 0 and status not in FINAL and waiting is None
        eta = round(remaining / rate, 1) if moving else None
        pause = (campaign.pause_code, campaign.pause_error_code, campaign.pause_message)
        # When it ended: completed_at, or the row's last change for the other final states.
        ended = time.time() - (campaign.completed_at or campaign.updated_at).timestamp()
        return Snapshot(status, counts, rate, eta, pause, waiting, ended)
