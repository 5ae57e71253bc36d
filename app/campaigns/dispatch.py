"""What a campaign's send chains (app/messages/tasks.py) and its sweeper
(app/campaigns/tasks.py) share: the mark of a live chain, starting chains, the dispatch
counters of /metrics, and finishing a campaign whose messages are all final."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from app.campaigns.lock import campaign_lock_key, try_lock
from app.campaigns.repository import CampaignRepository
from app.changes import changes_of, committed_changes
from app.changes.apply import apply_changes
from app.deps import Deps
from app.keyspace import CAMPAIGN_PREFIX
from app.messages.repository import MessageRepository
from app.models import CampaignStatus
from app.observability.metrics import record_dispatch

logger = logging.getLogger(__name__)

# Lock busy: another step of this campaign is running; try again shortly.
LOCK_RETRY_MS = 500


def active_key(campaign_id: int) -> str:
    """Present while some send_batch chain of the campaign is alive (or waiting for the
    messaging limit's window to slide)."""
    return f"{CAMPAIGN_PREFIX}active:{campaign_id}"


def sending_timeout_ms(deps: Deps) -> int:
    return int(deps.settings.dispatch_sending_timeout_s * 1000)


async def start_lanes(deps: Deps, campaign_id: int) -> None:
    await deps.redis.set(active_key(campaign_id), "1", px=sending_timeout_ms(deps))
    for _ in range(deps.settings.dispatch_lanes):
        deps.jobs.send_batch(campaign_id)


async def count_dispatch(deps: Deps, campaign_id: int, **outcomes: int) -> None:
    """Add to the dispatch counters of /metrics; they never hold up or fail a dispatch."""
    try:
        await record_dispatch(deps.redis, campaign_id, **outcomes)
    except (RedisError, OSError) as exc:
        logger.warning("campaign %s: dispatch counters not updated: %r", campaign_id, exc)


async def finish(deps: Deps, campaign_id: int) -> bool:
    """Reconcile messages of unknown fate and complete the campaign if every one is final.

    Returns whether the campaign is still dispatching (has open messages or is sending).
    """
    settings = deps.settings
    webhooks = settings.whatsapp_status_webhooks
    older_than = settings.dispatch_sending_timeout_s + (
        settings.dispatch_reconcile_grace_s if webhooks else 0
    )
    lock_key = campaign_lock_key(campaign_id)
    async with try_lock(deps.redis, lock_key, settings.dispatch_lock_ttl_ms) as locked:
        if not locked:
            # Someone else holds the campaign; look again shortly rather than miss the end.
            deps.jobs.send_batch(campaign_id, delay_ms=LOCK_RETRY_MS)
            return True
        async with deps.sessionmaker() as session:
            messages = MessageRepository(session)
            campaigns = CampaignRepository(session)
            reconciled = await messages.reconcile(campaign_id, older_than, resend=webhooks)
            campaign = await campaigns.get(campaign_id)
            cancelled = campaign is not None and campaign.status == CampaignStatus.CANCELLED
            if reconciled.resent and cancelled:
                await messages.fail_pending(campaign_id, "cancelled")
            completed = await campaigns.complete_if_done(campaign_id)
            if reconciled.failed or completed:
                changes_of(session).campaign_progress(campaign_id, force=True)
            counts = await messages.open_counts(campaign_id)
            await session.commit()
    if reconciled.resent or reconciled.failed:
        logger.warning(
            "campaign %s: messages of unknown fate: %d re-sent, %d failed unknown",
            campaign_id,
            reconciled.resent,
            reconciled.failed,
        )
    if reconciled.failed:
        await count_dispatch(deps, campaign_id, failed=reconciled.failed)
    await apply_changes(deps.redis, committed_changes(session))
    sending = campaign is not None and campaign.status == CampaignStatus.SENDING and not completed
    if sending and counts.pending and not await deps.redis.exists(active_key(campaign_id)):
        # Every send chain died with its worker (or re-sends wait): start new ones.
        await start_lanes(deps, campaign_id)
    return sending or counts.sending > 0
