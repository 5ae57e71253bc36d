"""A campaign's dispatch: materializing its messages, starting its send chains, sweeping
and completing it, scheduled starts, and recovery of campaigns whose chains were lost.

Plain coroutines taking their dependencies (testable directly); app/actors.py runs
them. A message is committed as `sending` before it goes to the provider, and a
live worker always records what it knows (app/messages/tasks.py). Only a worker that
dies mid-batch leaves messages `sending`, of unknown fate: the sweeper lets status
webhooks settle them for a grace period, then re-sends each at most once (or, with a
provider that posts no webhooks, fails them "unknown").
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from app.campaigns.dispatch import (
    LOCK_RETRY_MS,
    active_key,
    finish,
    sending_timeout_ms,
    start_lanes,
)
from app.campaigns.lock import campaign_lock_key, try_lock
from app.campaigns.repository import CampaignRepository
from app.changes import changes_of, committed_changes
from app.changes.apply import apply_changes
from app.deps import Deps
from app.keyspace import CAMPAIGN_PREFIX
from app.messages.repository import MessageRepository
from app.models import CampaignStatus

logger = logging.getLogger(__name__)


def sweep_key(campaign_id: int) -> str:
    """The token of the campaign's one live sweep chain."""
    return f"{CAMPAIGN_PREFIX}sweep:{campaign_id}"


async def _start_sweep_chain(deps: Deps, campaign_id: int, delay_ms: int) -> None:
    """Replace any earlier chain: an older token finds itself superseded and stops.

    Enqueued before its key is set: a chain whose key was not set still runs (it sets
    the key itself), whereas a key without a chain would hide a lost chain from recovery.
    """
    token = uuid.uuid4().hex
    deps.jobs.sweep(campaign_id, token, delay_ms=delay_ms)
    await deps.redis.set(sweep_key(campaign_id), token, px=_sweep_key_ttl_ms(delay_ms))


def _sweep_key_ttl_ms(delay_ms: int) -> int:
    """The sweep key outlives a healthy chain's next run; a lost chain's key soon expires."""
    return delay_ms * 2 + 5_000


def _sweep_interval_ms(deps: Deps) -> int:
    return max(200, sending_timeout_ms(deps) // 2)


async def materialize(deps: Deps, campaign_id: int) -> int:
    """Create the campaign's messages, then (re)start its send chains and its sweeper.

    Idempotent (ON CONFLICT DO NOTHING), so it is also how a campaign resumes, retries,
    or recovers after a crash. Returns how many messages it created.
    """
    lock_key = campaign_lock_key(campaign_id)
    async with try_lock(deps.redis, lock_key, deps.settings.dispatch_lock_ttl_ms) as locked:
        if not locked:
            deps.jobs.materialize(campaign_id, delay_ms=LOCK_RETRY_MS)
            return 0
        async with deps.sessionmaker() as session:
            campaign = await CampaignRepository(session).get(campaign_id)
            if campaign is None or campaign.status != CampaignStatus.SENDING:
                return 0
            created = await MessageRepository(session).materialize(campaign_id)
            changes_of(session).campaign_progress(campaign_id, force=True)  # it is sending
            await session.commit()
    await start_lanes(deps, campaign_id)
    await _start_sweep_chain(deps, campaign_id, _sweep_interval_ms(deps))
    await apply_changes(deps.redis, committed_changes(session))
    return created


async def sweep(deps: Deps, campaign_id: int, token: str) -> None:
    """The campaign's watchdog: runs every half sending-timeout while it has work left."""
    current = await deps.redis.get(sweep_key(campaign_id))
    if isinstance(current, bytes):
        current = current.decode()
    if current is not None and current != token:
        return  # superseded by a newer chain
    if await finish(deps, campaign_id):
        active_ttl = await deps.redis.pttl(active_key(campaign_id))
        delay = max(_sweep_interval_ms(deps), min(int(active_ttl), 3_600_000))
        deps.jobs.sweep(campaign_id, token, delay_ms=delay)
        await deps.redis.set(sweep_key(campaign_id), token, px=_sweep_key_ttl_ms(delay))
    elif current is not None:
        await deps.redis.delete(sweep_key(campaign_id))


async def start_scheduled(deps: Deps, campaign_id: int) -> bool:
    """scheduled → sending when due; a campaign rescheduled later or started by hand is skipped."""
    async with deps.sessionmaker() as session:
        started = await CampaignRepository(session).start_if_due(campaign_id, datetime.now(UTC))
        await session.commit()
    if started:
        await materialize(deps, campaign_id)
    return started


def recovery_key() -> str:
    return f"{CAMPAIGN_PREFIX}recovering"


async def recover(deps: Deps) -> int:
    """Re-arm every campaign with work left and no live sweep chain; returns how many.

    Run by every worker process at boot and then every dispatch_recovery_interval_s, so
    liveness never rests on a message a Redis blip could drop. Idempotent: a campaign
    whose chain is alive is left alone. One process per half interval does the scan.
    """
    interval_ms = int(deps.settings.dispatch_recovery_interval_s * 1000)
    if not await deps.redis.set(recovery_key(), "1", nx=True, px=max(100, interval_ms // 2)):
        return 0
    async with deps.sessionmaker() as session:
        campaigns = CampaignRepository(session)
        sending = await campaigns.ids_with_status(CampaignStatus.SENDING)
        due = await campaigns.sending_started_before(deps.settings.dispatch_recovery_interval_s)
        stuck = await MessageRepository(session).campaigns_with_sending()
    rearmed = 0
    for campaign_id in sorted(set(due) | (set(stuck) - set(sending))):
        if await deps.redis.exists(sweep_key(campaign_id)):
            continue
        if campaign_id in sending:
            # materialize restarts its lanes and its sweep chain; until that chain sets its
            # own token, this placeholder keeps the next rounds from re-arming it again
            # (and expires, to be re-armed, if the materialize message is lost too).
            deps.jobs.materialize(campaign_id)
            placeholder_ms = _sweep_key_ttl_ms(_sweep_interval_ms(deps))
            await deps.redis.set(sweep_key(campaign_id), "rearming", px=placeholder_ms)
        else:  # paused or cancelled with messages of unknown fate: only the sweeper
            await _start_sweep_chain(deps, campaign_id, _sweep_interval_ms(deps))
        rearmed += 1
    if rearmed:
        logger.warning("re-armed %d campaigns with no live dispatch chain", rearmed)
    return rearmed
