"""A campaign's send chains: claim a batch of its messages, send them, record the outcome.

A message is committed as `sending` before it goes to the provider, and a live worker
always records what it knows: sent with the provider's id, or back to pending if it never
left. What a dead worker left `sending` is settled by the campaign's sweeper
(app/campaigns/tasks.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

from redis.exceptions import RedisError

from app.campaigns.progress import notify_campaign_progress, notify_contacts_changed
from app.campaigns.repository import CampaignRepository
from app.campaigns.tasks import active_key, count_dispatch, finish, sending_timeout_ms
from app.contacts.repository import ContactRepository
from app.messages.repository import Claimed, MessageRepository
from app.models import CampaignStatus
from app.whatsapp.providers import Outbound, SendResult, Template
from app.whatsapp.quota import DailyQuota, RateLimiter
from app.worker.deps import Deps

logger = logging.getLogger(__name__)


async def send_batch(deps: Deps, campaign_id: int) -> int:
    """One link of a send chain: batches for up to dispatch_chain_seconds, then re-enqueue.

    Looping inside the actor saves a broker round trip per batch (an idle Dramatiq
    consumer polls with backoff, which cost up to a second per hop); the time budget
    keeps links short so chains spread over worker processes. Pause and cancel are seen
    at the next batch. Returns how many messages this link claimed.
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
        return None

    # From here on the worker knows each message's fate: whatever fails (a Redis call, a
    # shutdown), the finally block records it, and what never left goes back to pending.
    results: list[SendResult] = [
        SendResult(m.id, error="opted out" if m.opted_out else "invalid number")
        for m in claimed
        if m.opted_out or m.invalid
    ]
    unsent = {m.id for m in eligible}
    try:
        await _refund(quota, granted - len(eligible))
        await _mark_active(deps, campaign_id, sending_timeout_ms(deps))
        template = Template(
            campaign.template_name, campaign.template_language, campaign.template_body
        )
        await _send_all(deps, template, eligible, results, unsent)
    finally:
        await _record(deps, results, {m.id: m.contact_id for m in claimed}, sorted(unsent))
        if unsent:
            await _refund(quota, len(unsent))
    unknown = [r for r in results if r.unknown]
    if unknown:
        # They hold the campaign open until reconciled: never silently.
        logger.warning(
            "campaign %s: %d sends of unknown fate stay sending until reconciled (%s)",
            campaign_id,
            len(unknown),
            unknown[0].error,
        )
    sent = sum(1 for r in results if r.ok)
    # Not the unknown ones: their re-send counts them sent, or reconciliation failed.
    await count_dispatch(deps, campaign_id, sent=sent, failed=len(results) - sent - len(unknown))
    await notify_campaign_progress(deps.redis, campaign_id)
    if any(r.undeliverable for r in results):
        await notify_contacts_changed(deps.redis)
    return len(claimed)


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
    template: Template,
    batch: list[Claimed],
    results: list[SendResult],
    unsent: set[int],
) -> None:
    """Send in rate-limited waves, each at most dispatch_send_concurrency wide.

    Takes each wave's ids out of `unsent` as it leaves and appends its results when it
    returns, so a failing rate-limit call leaves an exact account of what went out.
    """
    limiter = RateLimiter(deps.redis, deps.settings.whatsapp_rate_per_second)
    width = deps.settings.dispatch_send_concurrency
    position = 0
    while position < len(batch):
        allowed = await limiter.take(min(width, len(batch) - position))
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


async def _record(
    deps: Deps, results: list[SendResult], contact_of: dict[int, int], unsent: list[int]
) -> None:
    sent = [r for r in results if r.ok]
    failed = [r for r in results if not (r.ok or r.unknown)]  # unknown ones stay `sending`
    async with deps.sessionmaker() as session:
        messages = MessageRepository(session)
        await messages.record_sent(
            [r.message_id for r in sent], [r.provider_message_id or "" for r in sent]
        )
        await messages.record_failed(
            [r.message_id for r in failed], [r.error or "failed" for r in failed]
        )
        await messages.release(unsent)
        await ContactRepository(session).mark_invalid(
            [contact_of[r.message_id] for r in failed if r.undeliverable]
        )
        await session.commit()


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
