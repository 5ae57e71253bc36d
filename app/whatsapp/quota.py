"""The daily quota shared by every worker (the per-second rate: app/whatsapp/pacing.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from app.keyspace import WHATSAPP_PREFIX

DAILY_KEY = f"{WHATSAPP_PREFIX}daily:count"

# Grant up to ARGV[1] units without passing the limit ARGV[2]; the key expires at ARGV[3]
# (unix seconds). Atomic, so concurrent workers can never overshoot the limit together.
_TAKE = """
local used = tonumber(redis.call('get', KEYS[1]) or '0')
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - used)
if grant <= 0 then
    return 0
end
redis.call('incrby', KEYS[1], grant)
redis.call('expireat', KEYS[1], ARGV[3])
return grant
"""

# Give back units reserved but not used, unless the window already rolled over.
_REFUND = """
if redis.call('exists', KEYS[1]) == 1 then
    return redis.call('decrby', KEYS[1], ARGV[1])
end
return 0
"""


def next_day_boundary(now: datetime | None = None) -> datetime:
    """The provider's quota day ends at midnight UTC."""
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


class DailyQuota:
    def __init__(self, redis: Redis, limit: int) -> None:
        self.redis = redis
        self.limit = limit

    async def reserve(self, wanted: int) -> int:
        """Reserve up to `wanted` sends today; 0 means the quota is reached."""
        expire_at = int(next_day_boundary().timestamp())
        granted = await self.redis.eval(_TAKE, 1, DAILY_KEY, wanted, self.limit, expire_at)
        return int(granted)

    async def refund(self, unused: int) -> None:
        if unused > 0:
            await self.redis.eval(_REFUND, 1, DAILY_KEY, unused)

    @staticmethod
    def ms_until_reset() -> int:
        return int((next_day_boundary() - datetime.now(UTC)).total_seconds() * 1000) + 1
