"""Sliding-window rate limiting in Redis, shared by every API process; fails open.

Keys: `ratelimit:<bucket>`, a sorted set of request timestamps (ms, Redis clock) that
expires with the window. A refused request is not recorded, so a client that waits the
advertised Retry-After gets through.

A bucket found full stays full until its oldest request leaves the window, whatever any
process does meanwhile: until then the process refuses it from memory (`known_wait`), so a
flood from a caller whose window is used costs no Redis round trip, and can be refused
before its document is even parsed.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
import weakref
from collections.abc import Sequence
from typing import NamedTuple

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.api_keys.auth import EPOCH_KEY

logger = logging.getLogger(__name__)

PREFIX = "ratelimit:"
# Skip Redis this long after a failure, so an outage costs one timeout, not one per request.
RETRY_AFTER_FAILURE_S = 5.0
# Buckets remembered full at most; past it the expired ones go, then (a flood of
# addresses) all of them: forgetting one costs a round trip, never a wrong answer.
_MAX_FULL = 10_000

# Redis' own clock: API processes with skewed clocks still share one window. The first key
# is the API keys' revocation epoch, returned in the same round trip (app/api_keys/auth.py);
# the others are the buckets a request counts against: it is allowed only when every one
# has room, and then recorded in each. Returns the epoch, then each bucket's wait in ms
# until a slot frees (-1: it has room).
_SCRIPT = """
local limit, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local epoch = tonumber(redis.call('GET', KEYS[1]) or '0')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local waits, full = {epoch}, false
for i = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  local wait = -1
  if redis.call('ZCARD', KEYS[i]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    wait = math.max(1, tonumber(oldest[2]) + window - now)
    full = true
  end
  waits[i] = wait
end
if not full then
  for i = 2, #KEYS do
    redis.call('ZADD', KEYS[i], now, now .. ':' .. member)
    redis.call('PEXPIRE', KEYS[i], window)
  end
end
return waits
"""


class Verdict(NamedTuple):
    retry_after_ms: int | None
    revocation_epoch: int | None


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(_SCRIPT)
        self._down_until = 0.0
        self._outage_logged = False
        self._full_until: dict[str, float] = {}  # bucket -> monotonic time a slot frees

    def known_wait(self, buckets: Sequence[str]) -> int | None:
        """Milliseconds until a slot frees in every bucket this process found full and still
        is; None when it knows of none (Redis decides)."""
        if not self._full_until:
            return None
        now = time.monotonic()
        wait = 0.0
        for bucket in buckets:
            until = self._full_until.get(bucket)
            if until is not None:
                if until > now:
                    wait = max(wait, until - now)
                else:
                    del self._full_until[bucket]
        return math.ceil(wait * 1000) if wait else None

    async def hit(self, buckets: Sequence[str], limit: int, window_s: float) -> Verdict:
        """Record one request in every bucket: milliseconds until a slot frees in all of
        them when one is full (else None), and the API keys' revocation epoch (None when
        Redis did not answer).

        Redis unavailable: allowed (an outage must not take the API down with it), with one
        warning per outage.
        """
        known = self.known_wait(buckets)
        if known is not None:
            return Verdict(known, None)
        if time.monotonic() < self._down_until:
            return Verdict(None, None)
        try:
            epoch, *waits = await self._script(
                keys=[EPOCH_KEY, *(PREFIX + bucket for bucket in buckets)],
                args=[limit, max(1, int(window_s * 1000)), secrets.token_hex(4)],
            )
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + RETRY_AFTER_FAILURE_S
            if not self._outage_logged:
                self._outage_logged = True
                logger.warning("rate limiting off while Redis is unavailable: %s", exc)
            return Verdict(None, None)
        if self._outage_logged:
            self._outage_logged = False
            logger.warning("rate limiting on again: Redis is back")
        retry_after_ms = max(waits)
        if retry_after_ms < 0:
            return Verdict(None, int(epoch))
        self._remember_full(buckets, waits)
        return Verdict(int(retry_after_ms), int(epoch))

    def _remember_full(self, buckets: Sequence[str], waits: Sequence[int]) -> None:
        now = time.monotonic()
        if len(self._full_until) >= _MAX_FULL:
            self._full_until = {b: t for b, t in self._full_until.items() if t > now}
            if len(self._full_until) >= _MAX_FULL:
                self._full_until.clear()
        for bucket, wait in zip(buckets, waits, strict=True):
            if wait >= 0:
                self._full_until[bucket] = now + wait / 1000


_limiters: weakref.WeakKeyDictionary[Redis, RateLimiter] = weakref.WeakKeyDictionary()


def limiter_for(redis: Redis) -> RateLimiter:
    """One limiter (and one outage state) per Redis client, i.e. per API process."""
    limiter = _limiters.get(redis)
    if limiter is None:
        limiter = _limiters[redis] = RateLimiter(redis)
    return limiter
