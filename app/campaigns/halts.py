"""What follows a pause Herald decided over a campaign-stopping error, once committed.

A halt mark per paused campaign stops its send chains before their next wave (the rate
limiter reads it in the same round trip, app/whatsapp/pacing.py), rather than at their
next batch: after the error, nothing more than the waves already in flight goes out. The
mark only has to outlive those waves; resumeCampaign removes it at once. Then progress
events, the pauses counter of /metrics, and a log line per campaign.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.campaigns.progress import notify_campaign_progress
from app.changes import Paused
from app.keyspace import CAMPAIGN_PREFIX
from app.observability.metrics import record_pauses

logger = logging.getLogger(__name__)

HALT_TTL_MS = 60_000


def halt_key(campaign_id: int) -> str:
    return f"{CAMPAIGN_PREFIX}halt:{campaign_id}"


async def announce_paused(redis: Redis, paused: Paused) -> None:
    """Halt marks, progress events, the counter and the log; Redis failing is logged (the
    chains then stop at their next batch, which reads the campaign's status)."""
    reason = paused.reason
    for campaign_id in paused.campaign_ids:
        logger.warning(
            "campaign %s paused: %s (Cloud API error %s): %s",
            campaign_id,
            reason.code.name,
            reason.error_code,
            reason.message,
        )
    if not paused.campaign_ids:
        return
    try:
        pipe = redis.pipeline(transaction=False)
        for campaign_id in paused.campaign_ids:
            pipe.set(halt_key(campaign_id), reason.code.value, px=HALT_TTL_MS)
        await pipe.execute()
        await record_pauses(redis, reason.code.value, len(paused.campaign_ids))
    except RedisError as exc:
        logger.warning("campaigns %s: halt marks not set: %r", paused.campaign_ids, exc)
    for campaign_id in paused.campaign_ids:
        await notify_campaign_progress(redis, campaign_id, force=True)


async def clear_halt(redis: Redis, campaign_id: int) -> None:
    """Let a resumed campaign's chains send again (before they are started)."""
    try:
        await redis.delete(halt_key(campaign_id))
    except RedisError as exc:
        # The mark expires by itself; until then the chains stop at once and the sweeper
        # starts them again.
        logger.warning("campaign %s: halt mark not cleared: %r", campaign_id, exc)
