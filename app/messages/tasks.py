"""A campaign's send chains: claim a batch of its messages, send them, record the outcome.

A message is committed as `sending` before it goes to the provider, and a live worker
always records what it knows: sent with the provider's id, failed with its error, or back
to pending when it never left or its error's class sends it again later
(app/whatsapp/errors.py). What a dead worker left `sending` is settled by the campaign's
sweeper (app/campaigns/tasks.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from app.campaigns.halts import announce_paused, halt_key
from app.campaigns.progress import notify_campaign_progress, notify_contacts_changed
from app.campaigns.repository import CampaignRepository
from app.campaigns.service import CampaignDispatchService
from app.campaigns.tasks import active_key, count_dispatch, finish, sending_timeout_ms
from app.messages.outcomes import Recorded, record
from app.messages.repository import Claimed, MessageRepository
from app.models import CampaignStatus
from app.templates.service import parameter_sources
from app.whatsapp.errors import ErrorClass, classify
from app.whatsapp.pacing import Pacer
from app.whatsapp.providers import Outbound, SendResult, Template
from app.whatsapp.quota import DailyQuota
from app.worker.deps import Deps

logger = logging.getLogger(__name__)


async def send_batch(deps: Deps, campaign_id: int) -> int:
    """One link of a send chain: batches for up to dispatch_chain_seconds, then re-enqueue.

    Looping inside the actor saves a broker round trip per batch (an idle Dramatiq
    consumer polls with backoff, which cost up to a second per hop); the time budget
    keeps links short so chains spread over worker processes. Pause and cancel are seen
    at the next batch, a pause over a Cloud API error before the next wave (its halt
    mark). Returns how many messages this link claimed.
    """
    budget_end = time.monotonic() + deps.settings.dispatch_chain_seconds
    total = 0
    while True:
        outcome = await _one_batch(deps, campaign_id)
        if outcome is None:
            return total  # paused, cancelled, done, or waiting for the quota: chain ends
        total += outcome
        if time.monotonic() >= budget_end:
            deps.jobs.send_batch(campaign_id)
            return total


async def _one_batch(deps: Deps, campaign_id: int) -> int | None:
    """Claim, commit, send, record one batch; None when the chain must stop here."""
    settings = deps.settings
    async with deps.sessionmaker() as session:
        campaign = await CampaignRepository(session).get(campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return None
    quota = DailyQuota(deps.redis, settings.whatsapp_daily_quota)
    granted = await quota.reserve(settings.dispatch_batch_size)
    if granted == 0:
        wait_ms = DailyQuota.ms_until_reset()
        await _mark_active(deps, campaign_id, wait_ms + sending_timeout_ms(deps))
        deps.jobs.send_batch(campaign_id, delay_ms=wait_ms)
        logger.info("campaign %s: daily quota reached, waiting %d s", campaign_id, wait_ms // 1000)
        await _count_held_back(deps, campaign_id)
        return None

    async with deps.sessionmaker() as session:
        claimed = await MessageRepository(session).claim(campaign_id, granted)
        await session.commit()  # `sending` is durable before anything leaves
    eligible = [m for m in claimed if not (m.opted_out or m.invalid)]
    if not claimed:
        await _refund(quota, granted)
        await finish(deps, campaign_id)
        await _wait_for_deferred(deps, campaign_id)
        return None

    # From here on the worker knows each message's fate: whatever fails (a Redis call, a
    # shutdown), the finally block records it, and what never left goes back to pending.
    skipped = [
        (m.id, "opted out" if m.opted_out else "invalid number")
        for m in claimed
        if m.opted_out or m.invalid
    ]
    results: list[SendResult] = []
    unsent = {m.id for m in eligible}
    try:
        await _refund(quota, granted - len(eligible))
        await _mark_active(deps, campaign_id, sending_timeout_ms(deps))
        template = Template(
            campaign.template_name,
            campaign.template_language,
            campaign.template_body,
            parameter_sources(campaign.template_parameters),
        )
        halted = await _send_all(deps, campaign_id, template, eligible, results, unsent)
    finally:
        async with deps.sessionmaker() as session:
            contact_of = {m.id: m.contact_id for m in claimed}
            recorded = await record(session, results, skipped, contact_of)
            await MessageRepository(session).release(sorted(unsent))
            await session.commit()
        if unsent or recorded.put_back:
            await _refund(quota, len(unsent) + recorded.put_back)
    await _after(deps, campaign, recorded)
    return None if halted else len(claimed)


async def _after(deps: Deps, campaign: Any, recorded: Recorded) -> None:
    """Counters, progress, and the pauses a campaign-stopping error calls for."""
    campaign_id = campaign.id
    if recorded.unknown:
        # They hold the campaign open until reconciled: never silently.
        logger.warning(
            "campaign %s: %d sends of unknown fate stay sending until reconciled (%s)",
            campaign_id,
            recorded.unknown,
            recorded.unknown_error,
        )
    # Not the unknown ones: their re-send counts them sent, or reconciliation failed.
    await count_dispatch(
        deps,
        campaign_id,
        sent=recorded.sent,
        failed=recorded.failed,
        rate_limited=recorded.slowed,
        deferred=recorded.deferred,
    )
    await notify_campaign_progress(deps.redis, campaign_id)
    if recorded.invalid:
        await notify_contacts_changed(deps.redis)
    template = (campaign.template_name, campaign.template_language)
    for code in recorded.stopping_codes:
        async with deps.sessionmaker() as session:
            paused = await CampaignDispatchService(session).pause_for_error(code, template)
            await session.commit()
        await announce_paused(deps.redis, paused)


async def _wait_for_deferred(deps: Deps, campaign_id: int) -> None:
    """Nothing to claim: if messages wait for their retry-later time, this chain sleeps in
    the broker until the first is due; otherwise it ends, and its activity mark with it,
    so that a message an error webhook puts back finds no chain and starts one."""
    async with deps.sessionmaker() as session:
        wait_s = await MessageRepository(session).next_due_s(campaign_id)
    if wait_s is None:
        try:
            await deps.redis.delete(active_key(campaign_id))
        except RedisError as exc:
            logger.warning("campaign %s: active mark not removed: %s", campaign_id, exc)
        return
    delay_ms = int(wait_s * 1000) + 1
    await _mark_active(deps, campaign_id, delay_ms + sending_timeout_ms(deps))
    deps.jobs.send_batch(campaign_id, delay_ms=delay_ms)


async def _refund(quota: DailyQuota, unused: int) -> None:
    """Best effort: a refund lost to a Redis error only makes the quota stricter."""
    try:
        await quota.refund(unused)
    except RedisError as exc:
        logger.warning("quota refund of %d lost: %s", unused, exc)


async def _mark_active(deps: Deps, campaign_id: int, ttl_ms: int) -> None:
    """Best effort: a missing mark only lets the sweeper start a spare chain (harmless)."""
    try:
        await deps.redis.set(active_key(campaign_id), "1", px=ttl_ms)
    except RedisError as exc:
        logger.warning("campaign %s: active mark not set: %s", campaign_id, exc)


async def _send_all(
    deps: Deps,
    campaign_id: int,
    template: Template,
    batch: list[Claimed],
    results: list[SendResult],
    unsent: set[int],
) -> bool:
    """Send in paced waves, each at most dispatch_send_concurrency wide; True when halted.

    Takes each wave's ids out of `unsent` as it leaves and appends its results when it
    returns, so a failing Redis call leaves an exact account of what went out. A
    slow-down error halves the shared rate; a campaign-stopping one, here or in another
    chain (the campaign's halt mark), stops the batch: the rest stays unsent.
    """
    settings = deps.settings
    pacer = Pacer(deps.redis, settings.whatsapp_rate_per_second, settings.whatsapp_rate_recovery_s)
    halt = halt_key(campaign_id)
    width = settings.dispatch_send_concurrency
    position = 0
    while position < len(batch):
        allowed = await pacer.take(min(width, len(batch) - position), halt)
        if allowed < 0:
            return True
        wave = batch[position : position + allowed]
        position += allowed
        # Handed over from here: if the wave is interrupted (time limit, shutdown), these
        # stay `sending`, of unknown fate, rather than going back to pending.
        unsent -= {m.id for m in wave}
        outcomes = await asyncio.gather(
            *(
                deps.provider.send(
                    template, Outbound(m.id, m.contact_id, m.phone, m.name, m.attributes)
                )
                for m in wave
            )
        )
        results += outcomes
        kinds = {
            classify(r.code, r.http_status).kind for r in outcomes if r.error and not r.unknown
        }
        if ErrorClass.SLOW_DOWN in kinds:
            await pacer.slow_down()
        if ErrorClass.CAMPAIGN_STOPPING in kinds:
            return False
    return False


async def _count_held_back(deps: Deps, campaign_id: int) -> None:
    """Count the messages a quota wait holds back; after the wait is scheduled, so that a
    failure here (logged) can neither stop the chain nor, through a retry, fork it."""
    try:
        async with deps.sessionmaker() as session:
            waiting = (await MessageRepository(session).open_counts(campaign_id)).pending
    except Exception as exc:  # the database's own errors vary by driver; none may escape
        logger.warning("campaign %s: held-back messages not counted: %r", campaign_id, exc)
        return
    await count_dispatch(deps, campaign_id, rate_limited=waiting)
