"""The portfolio's messaging limit, exact across every worker: unique users reached outside a
customer-service window in a moving 24 hours.

One Redis sorted set holds each recipient reached in the window, scored by its last reach
(milliseconds times 1,000 plus a per-call sequence, so that a reservation's own score tells it
apart). One Lua script trims what left the window, admits recipients already in it (they
count once), adds new ones while fewer than the limit are in it, and refuses the others
with the time a slot frees for each: concurrent workers can never admit more together.

A reservation of a send that did not go out is given back (only if no later reservation
re-reached the recipient since); a send of unknown fate stays counted. The set is rebuilt
from PostgreSQL (what was sent in the last 24 hours) whenever its seed mark is missing:
Redis emptied, or the tier was unlimited (nothing is recorded then). The mark holds a token
per seeding: a batch whose sends were recorded after a re-seeding began adds them again
(`settle`), so sends in flight across a Redis loss are counted too. The clock is injected:
the window moves with it, in tests without waiting a day.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from redis.asyncio import Redis

from app.keyspace import WHATSAPP_PREFIX

REACH_KEY = f"{WHATSAPP_PREFIX}reach"
SEEDED_KEY = f"{WHATSAPP_PREFIX}reach:seeded"
SEQUENCE_KEY = f"{WHATSAPP_PREFIX}reach:seq"
WINDOW_S = 24 * 3600
DEFAULT_TIER = 250  # a new portfolio's limit: what Herald assumes until one is reported
SEED_CHUNK = 5_000

Clock = Callable[[], float]  # Unix seconds
# (recipient, last reach in Unix ms): what PostgreSQL knows was reached in the window.
Seed = Callable[[float], Awaitable[Sequence[tuple[str, int]]]]

ADMITTED_NEW, ADMITTED_AGAIN, REFUSED = 1, 0, -1

# KEYS: the set, the seed mark, the sequence. ARGV: limit (-1: unlimited), now ms, window
# ms, recipients... Returns {-1} when the set must be seeded first; else {score, flags,
# expiries, token}: a flag per recipient (1 new, 0 already in the window, -1 refused),
# when some were refused the scores of the oldest members (when their slots free), and the
# seeding's token.
_RESERVE = """
local limit, now, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local flags = {}
if limit < 0 then
    redis.call('del', KEYS[2])
    for i = 4, #ARGV do flags[#flags + 1] = 0 end
    return {0, flags, {}, ''}
end
local token = redis.call('get', KEYS[2])
if not token then
    return {-1}
end
redis.call('zremrangebyscore', KEYS[1], '-inf', (now - window) * 1000 + 999)
local used = redis.call('zcard', KEYS[1])
local score = now * 1000 + redis.call('incr', KEYS[3]) % 1000
local refused = 0
for i = 4, #ARGV do
    if redis.call('zscore', KEYS[1], ARGV[i]) then
        redis.call('zadd', KEYS[1], score, ARGV[i])
        flags[#flags + 1] = 0
    elseif used < limit then
        redis.call('zadd', KEYS[1], score, ARGV[i])
        used = used + 1
        flags[#flags + 1] = 1
    else
        flags[#flags + 1] = -1
        refused = refused + 1
    end
end
local expiries = {}
if refused > 0 then
    expiries = redis.call('zrange', KEYS[1], 0, refused - 1, 'WITHSCORES')
end
return {score, flags, expiries, token}
"""

# KEYS: the set, the seed mark. ARGV: a reservation's score and token, how many recipients
# to give back, those (removed if still at that score), then the recipients it reached
# (added again, at that score, if the set was seeded anew since). Returns how many it gave
# back.
_SETTLE = """
local score, given, back = tonumber(ARGV[1]), 0, tonumber(ARGV[3])
for i = 4, 3 + back do
    local at = redis.call('zscore', KEYS[1], ARGV[i])
    if at and tonumber(at) == score then
        redis.call('zrem', KEYS[1], ARGV[i])
        given = given + 1
    end
end
if redis.call('get', KEYS[2]) ~= ARGV[2] then
    for i = 4 + back, #ARGV do
        local at = redis.call('zscore', KEYS[1], ARGV[i])
        if not at or tonumber(at) < score then
            redis.call('zadd', KEYS[1], score, ARGV[i])
        end
    end
end
return given
"""

# KEYS: the set, the seed mark. ARGV: pairs of recipient and score, then the token to mark
# the set seeded with ('' for all chunks but the last). A score only ever moves forward.
_SEED = """
local last = #ARGV - 1
for i = 1, last, 2 do
    local at = redis.call('zscore', KEYS[1], ARGV[i])
    if not at or tonumber(at) < tonumber(ARGV[i + 1]) then
        redis.call('zadd', KEYS[1], ARGV[i + 1], ARGV[i])
    end
end
if ARGV[#ARGV] ~= '' then
    redis.call('set', KEYS[2], ARGV[#ARGV])
end
return 1
"""


@dataclass(frozen=True)
class Reservation:
    score: int
    flags: list[int]
    # When a slot frees for each refused recipient, in order (Unix seconds).
    frees_at: list[float] = field(default_factory=list)
    token: str = ""  # the seeding it was made under; empty: unlimited, nothing recorded

    def admitted(self, index: int) -> bool:
        return self.flags[index] != REFUSED


@dataclass(frozen=True)
class Usage:
    """The window now: `used` recipients in it, the next slot freeing at `resets_at`."""

    limit: int | None
    used: int
    resets_at: float | None

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.used)


def _expiry(score: float) -> float:
    return (int(score) // 1000) / 1000 + WINDOW_S


class MessagingLimiter:
    def __init__(self, redis: Redis, seed: Seed, clock: Clock = time.time) -> None:
        self.redis = redis
        self.seed = seed
        self.clock = clock

    async def reserve(self, limit: int | None, recipients: Sequence[str]) -> Reservation:
        """Admit what the window allows of `recipients` (limit None: unlimited)."""
        while True:
            now_ms = int(self.clock() * 1000)
            reply = await self.redis.eval(
                _RESERVE,
                3,
                REACH_KEY,
                SEEDED_KEY,
                SEQUENCE_KEY,
                -1 if limit is None else limit,
                now_ms,
                WINDOW_S * 1000,
                *recipients,
            )
            if int(reply[0]) >= 0:
                score, flags, expiries = int(reply[0]), [int(f) for f in reply[1]], reply[2]
                token = reply[3].decode() if isinstance(reply[3], bytes) else str(reply[3])
                frees = [_expiry(float(s)) for s in expiries[1::2]]
                refused = flags.count(REFUSED)
                fallback = frees[-1] if frees else now_ms / 1000 + WINDOW_S
                frees += [fallback] * (refused - len(frees))
                return Reservation(score, flags, frees, token)
            await self.load_seed()

    async def load_seed(self) -> None:
        """Add what PostgreSQL knows was reached in the window, then mark the set seeded."""
        since = self.clock() - WINDOW_S
        reached = list(await self.seed(since))
        chunks = [reached[i : i + SEED_CHUNK] for i in range(0, len(reached), SEED_CHUNK)] or [[]]
        token = uuid.uuid4().hex
        for number, chunk in enumerate(chunks, 1):
            pairs = [value for phone, ms in chunk for value in (phone, ms * 1000)]
            last = token if number == len(chunks) else ""
            await self.redis.eval(_SEED, 2, REACH_KEY, SEEDED_KEY, *pairs, last)

    async def settle(
        self, reservation: Reservation, back: Sequence[str], reached: Sequence[str] = ()
    ) -> int:
        """Give back new admissions whose send did not go out (`back`), and count again the
        recipients `reached` if the set was seeded anew meanwhile; returns how many it gave
        back."""
        if not reservation.token or not (back or reached):
            return 0
        return int(
            await self.redis.eval(
                _SETTLE,
                2,
                REACH_KEY,
                SEEDED_KEY,
                reservation.score,
                reservation.token,
                len(back),
                *back,
                *reached,
            )
        )

    def _low(self, now: float) -> str:
        """The set's scores past this bound are in the window (exclusive)."""
        return f"({int((now - WINDOW_S) * 1000) * 1000 + 999}"

    async def usage(self, limit: int | None) -> Usage:
        """The window now; read only (a reservation trims it)."""
        low = self._low(self.clock())
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcount(REACH_KEY, low, "+inf")
        pipe.zrangebyscore(REACH_KEY, low, "+inf", start=0, num=1, withscores=True)
        used, oldest = await pipe.execute()
        return Usage(limit, int(used), _expiry(oldest[0][1]) if oldest else None)

    async def slot_times(self, usage: Usage, later: Sequence[int]) -> list[float]:
        """When the k-th next slot frees, for each k (1-based) in `later`: the k-th oldest
        member's expiry; past the members in the window now, a whole window after the one
        whose slot it reuses (each slot refilled as soon as it frees)."""
        now = self.clock()
        if not usage.used or not later:
            return [now for _ in later]
        low = self._low(now)
        pipe = self.redis.pipeline(transaction=False)
        for k in later:
            pipe.zrangebyscore(
                REACH_KEY, low, "+inf", start=(k - 1) % usage.used, num=1, withscores=True
            )
        found = await pipe.execute()
        return [
            _expiry(hit[0][1]) + WINDOW_S * ((k - 1) // usage.used) if hit else now
            for k, hit in zip(later, found, strict=True)
        ]
