"""Per-request authentication: the caller is looked up on first need, at most once.

Lookups are remembered per process for `HERALD_AUTH_CACHE_SECONDS` (key digest → caller),
so a hot key costs no SQL. Revocation reaches every process at once through a Redis
epoch (`auth:epoch`) that the rate limiter reads in its own round trip; without that round
trip (rate limiting off, Redis down) a revoked key is refused at most
`HERALD_AUTH_CACHE_SECONDS` later, and at once in the process that revoked it. The key's
open WebSockets end at once through the live hub's pub/sub (app/live/hub.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys.service import ApiKeyService, Caller, bearer_token, well_formed
from app.db.engine import uncounted
from app.live.hub import publish_key_revoked

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

EPOCH_KEY = "auth:epoch"  # bumped on every revocation; read by the rate limiter's script
# Unknown digests are remembered too (a bad key must not cost SQL each time), so the size
# is bounded: past it the cache starts over.
_MAX_ENTRIES = 10_000


class CallerCache:
    """This process's recent key lookups: digest → (caller or None, expiry)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[Caller | None, float]] = {}
        self._epoch: int | None = None

    def get(self, digest: str) -> tuple[bool, Caller | None]:
        entry = self._entries.get(digest)
        if entry is None or entry[1] <= time.monotonic():
            return False, None
        return True, entry[0]

    def last(self, digest: str) -> Caller | None:
        """The caller last found for the key, however long ago (a revocation forgets it)."""
        entry = self._entries.get(digest)
        return None if entry is None else entry[0]

    def put(self, digest: str, caller: Caller | None) -> None:
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (caller, time.monotonic() + self.ttl_s)

    def observe_epoch(self, epoch: int) -> None:
        """A revocation somewhere since the last look: forget every lookup."""
        if epoch != self._epoch:
            self._entries.clear()
            self._epoch = epoch

    def clear(self) -> None:
        self._entries.clear()


async def announce_revocation(redis: Redis, callers: CallerCache, key_id: int) -> None:
    """After a revocation commits (revokeApiKey, `herald apikey revoke`): this process
    forgets at once, the others on their next rate-limited request (or within the cache's
    TTL when Redis cannot tell them), and every process closes the key's WebSockets."""
    callers.clear()
    try:
        await redis.incr(EPOCH_KEY)
    except Exception as exc:  # Redis down: the TTL still bounds the other processes
        logger.warning("could not announce a key revocation to other processes: %s", exc)
    await publish_key_revoked(redis, key_id)


class RequestAuth:
    """Lazily resolves `Authorization: Bearer <key>` into a Caller.

    Nothing is looked up until a protected field asks, so public requests (`version`,
    GraphiQL's page) spend no SQL. A lookup runs on the request's own session, and only
    when this process has not looked the key up within the cache's TTL.
    """

    def __init__(
        self, session: AsyncSession, authorization: str | None, callers: CallerCache
    ) -> None:
        self._session = session
        self._token = bearer_token(authorization)
        self._callers = callers
        self._digest: str | None = None
        self._lookup: asyncio.Task[Caller | None] | None = None

    @property
    def presented(self) -> bool:
        """Whether the request carried a well-formed bearer key (valid or not)."""
        return self._token is not None

    @property
    def token_digest(self) -> str | None:
        """A stable, non-secret name for the presented key (rate-limit buckets, the cache);
        the same SHA-256 the database stores."""
        if self._token is None:
            return None
        if self._digest is None:
            self._digest = hashlib.sha256(self._token.encode()).hexdigest()
        return self._digest

    @property
    def callers(self) -> CallerCache:
        return self._callers

    def observe_epoch(self, epoch: int) -> None:
        self._callers.observe_epoch(epoch)

    @property
    def well_formed(self) -> bool:
        """Whether the presented token could be a key at all (else no lookup is made)."""
        return self._token is not None and well_formed(self._token)

    def known_caller(self) -> Caller | None:
        """The caller when this process has found the key valid, even longer ago than the
        cache's TTL (a revocation makes every process forget it); no lookup. Enough for the
        key to have a rate-limit window of its own."""
        digest = self.token_digest
        return None if digest is None else self._callers.last(digest)

    async def caller(self) -> Caller | None:
        if self._lookup is None:
            digest = self.token_digest
            if digest is None or not self.well_formed:
                return None
            found, caller = self._callers.get(digest)
            if found:
                return caller
            # One shared task, not a lock: sibling fields checking permissions concurrently
            # all resume in the same loop iteration, so their loaders still batch. Shielded:
            # a sibling cancelled by the executor must not cancel the others' lookup.
            self._lookup = asyncio.ensure_future(self._authenticate(digest))
        return await asyncio.shield(self._lookup)

    async def _authenticate(self, digest: str) -> Caller | None:
        assert self._token is not None
        with uncounted():
            caller = await ApiKeyService(self._session).authenticate(self._token)
        self._callers.put(digest, caller)
        return caller
