"""A sender number's send rate, shared by every worker process: a one-second window counted
in Redis, whose limit halves when the Cloud API says to slow down and climbs back by itself.

Throughput is the Cloud API's per business number, so each sender number has its own window
and its own pace (app/senders/). The limit is the number's throughput until a slow-down
error (130429 and the like, app/whatsapp/errors.py). Then it is halved, at most once a
second however many sends of a wave met the error, down to 1 message/s, and grows back
linearly: from 0 to the full rate in `whatsapp_rate_recovery_s`. The state is one Redis
hash per number, so every worker slows down together and nobody has to tell them to speed
up again.
"""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from app.keyspace import WHATSAPP_PREFIX

FLOOR = 1  # messages per second, however often the provider says to slow down
DEBOUNCE_MS = 1_000  # one halving per second: a wave's errors are one signal

# The limit now, from the hash {rate, at}: `rate` (set at `at`, unix ms) plus what it has
# regained since, at `per_s` a second, up to `max`.
_CURRENT = """
local function current(key, max, now, per_s)
    local state = redis.call('hmget', key, 'rate', 'at')
    if not state[1] then
        return max
    end
    local regained = (now - tonumber(state[2])) / 1000 * per_s
    return math.min(max, math.floor(tonumber(state[1]) + regained))
end
"""

# KEYS: this second's counter, the pace hash, a halt key; ARGV: wanted, max, now ms,
# regained per second, the counter's expiry (unix s). -1: the halt key is set.
_TAKE = (
    _CURRENT
    + """
if redis.call('exists', KEYS[3]) == 1 then
    return -1
end
local limit = current(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
local used = tonumber(redis.call('get', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), limit - used)
if grant <= 0 then
    return 0
end
redis.call('incrby', KEYS[1], grant)
redis.call('expireat', KEYS[1], ARGV[5])
return grant
"""
)

# KEYS: the pace hash; ARGV: max, now ms, regained per second, floor, debounce ms.
_SLOW_DOWN = (
    _CURRENT
    + """
local max, now, per_s = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local limit = current(KEYS[1], max, now, per_s)
local at = tonumber(redis.call('hget', KEYS[1], 'at') or '0')
if now - at < tonumber(ARGV[5]) then
    return limit
end
local halved = math.max(tonumber(ARGV[4]), math.floor(limit / 2))
redis.call('hset', KEYS[1], 'rate', halved, 'at', now)
redis.call('pexpire', KEYS[1], math.ceil((max - halved) / per_s * 1000) + 1000)
return halved
"""
)

# KEYS: the pace hash; ARGV: max, now ms, regained per second.
_READ = (
    _CURRENT + "return current(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))"
)


def pace_key(number: str) -> str:
    return f"{WHATSAPP_PREFIX}pace:{number}"


class Pacer:
    """The rate of the sender number whose Cloud API phone number id is `number`."""

    def __init__(self, redis: Redis, per_second: int, recovery_s: float, number: str) -> None:
        self.redis = redis
        self.per_second = per_second
        self.regain_per_s = per_second / recovery_s
        self.number = number
        self.pace_key = pace_key(number)

    async def take(self, wanted: int, halt_key: str) -> int:
        """Wait until at least one send is allowed in the current second; return how many,
        or -1 as soon as `halt_key` exists (the campaign was paused: send nothing more)."""
        while True:
            now = time.time()
            second = int(now)
            granted = int(
                await self.redis.eval(
                    _TAKE,
                    3,
                    f"{WHATSAPP_PREFIX}rate:{self.number}:{second}",
                    self.pace_key,
                    halt_key,
                    wanted,
                    self.per_second,
                    int(now * 1000),
                    self.regain_per_s,
                    second + 2,
                )
            )
            if granted:
                return granted
            await asyncio.sleep(second + 1 - now)

    async def slow_down(self) -> int:
        """Halve the shared limit (once a second at most); returns the new limit."""
        return int(
            await self.redis.eval(
                _SLOW_DOWN,
                1,
                self.pace_key,
                self.per_second,
                int(time.time() * 1000),
                self.regain_per_s,
                FLOOR,
                DEBOUNCE_MS,
            )
        )

    async def current(self) -> int:
        """The shared limit now, in messages per second."""
        return int(
            await self.redis.eval(
                _READ,
                1,
                self.pace_key,
                self.per_second,
                int(time.time() * 1000),
                self.regain_per_s,
            )
        )
