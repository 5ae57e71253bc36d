"""The cap on live subscriptions per API key, counted in Redis across every API process.

Keys: `live:subscriptions:<key id>`, a sorted set with one member per open subscription
(`<process token>:<n>`), scored by the moment (ms, Redis clock) its lease ends. Each
process renews its own members every third of a lease (`HERALD_LIVE_SUBSCRIPTION_LEASE_S`)
and removes a member when its subscription ends; a process that dies without doing so
(kill -9, a lost machine) gives its slots back when their leases lapse.

Redis unreachable: each process holds the cap over its own subscriptions of the key, as
a fail-safe both ways: subscribing keeps working, and a key still holds at most the cap
per API process. Subscriptions taken meanwhile are counted in Redis again at the next
renewal once it is back (existing streams are never cut for being over the cap).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets

from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

PREFIX = "live:subscriptions:"

# Redis' own clock: processes with skewed clocks share one view of which leases lapsed.
_TAKE = """
local key, limit, lease, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if redis.call('ZCARD', key) >= limit then
  return 0
end
redis.call('ZADD', key, now + lease, member)
redis.call('PEXPIRE', key, lease)
return 1
"""

# ARGV: the lease, then this process's members of the key (put back if they had lapsed).
_RENEW = """
local t = redis.call('TIME')
local ends = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], ends, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""


class KeyCaps:
    """This process's side of the per-key cap: what it holds, and the Redis count.

    Takes and releases made while a round trip is out wait for the next one and go together
    in one pipeline: a thousand dashboards opening at once cost a few round trips and one
    connection, not a thousand of each.
    """

    def __init__(self, redis: Redis, lease_s: float) -> None:
        self._redis = redis
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)
        self._lease_ms = max(1, int(lease_s * 1000))
        self._token = secrets.token_hex(6)  # this process's members
        self._serial = itertools.count()
        self._held: dict[int, set[str]] = {}  # key id -> members held here
        self._takes: list[tuple[int, int, str, asyncio.Future[bool]]] = []
        self._released: dict[int, set[str]] = {}  # to remove from Redis at the next trip
        self._sending: asyncio.Task[None] | None = None
        self._outage = False

    async def take(self, key_id: int, limit: int) -> str | None:
        """A slot for one more subscription of the key (its member), or None at the cap."""
        member = f"{self._token}:{next(self._serial)}"
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._takes.append((key_id, limit, member, answer))
        self._send_soon()
        try:
            granted = await answer
        except (RedisError, OSError):
            granted = len(self._held.get(key_id, ())) < limit  # this process's own count
        if not granted:
            return None
        self._held.setdefault(key_id, set()).add(member)
        return member

    def give_back(self, key_id: int, member: str) -> None:
        """The subscription ended: its slot is free here now, and in Redis a round trip later."""
        held = self._held.get(key_id)
        if held is not None:
            held.discard(member)
            if not held:
                del self._held[key_id]
        self._released.setdefault(key_id, set()).add(member)
        self._send_soon()

    async def renew(self) -> None:
        """Push back the leases of every member held here (one round trip)."""
        if not self._held:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key_id, members in self._held.items():
                    args: list[str | int] = [self._lease_ms, *sorted(members)]
                    await self._renew(keys=[PREFIX + str(key_id)], args=args, client=pipe)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            self._down(exc)
        else:
            self._up()
        self._send_soon()  # releases that failed during an outage

    async def keep_renewing(self) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            await self.renew()

    async def close(self) -> None:
        """Give every slot held here back (a clean shutdown), as far as Redis answers."""
        for key_id, members in list(self._held.items()):
            for member in members:
                self.give_back(key_id, member)
        while self._sending is not None:
            await asyncio.shield(self._sending)

    def _send_soon(self) -> None:
        if self._sending is None and (self._takes or self._released):
            self._sending = asyncio.create_task(self._send())

    async def _send(self) -> None:
        """Round trips until nothing waits; takes are answered in the order they came."""
        try:
            while self._takes or self._released:
                takes, self._takes = self._takes, []
                released, self._released = self._released, {}
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for key_id, limit, member, _ in takes:
                            take: list[str | int] = [limit, self._lease_ms, member]
                            await self._take(keys=[PREFIX + str(key_id)], args=take, client=pipe)
                        for key_id, members in released.items():
                            pipe.zrem(PREFIX + str(key_id), *members)
                        answers = await pipe.execute()
                except (RedisError, OSError) as exc:
                    self._down(exc)
                    for *_, answer in takes:
                        if not answer.done():
                            answer.set_exception(exc)
                    for key_id, members in released.items():  # retried after the next renewal
                        self._released.setdefault(key_id, set()).update(members)
                    return
                self._up()
                for (*_, answer), granted in zip(takes, answers, strict=False):
                    if not answer.done():
                        answer.set_result(bool(granted))
        finally:
            self._sending = None

    def _down(self, exc: BaseException) -> None:
        if not self._outage:
            self._outage = True
            logger.warning("live: subscription caps count per process while Redis is down: %s", exc)

    def _up(self) -> None:
        if self._outage:
            self._outage = False
            logger.warning("live: subscription caps counted across processes again")
