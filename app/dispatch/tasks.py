"""What the dispatch actors do, as plain coroutines taking their dependencies (testable directly).

A message is committed as `sending` before it goes to the provider, and a live worker
always records what it knows (sent with the provider's id, or back to pending if it
never left). Only a worker that dies mid-batch leaves messages `sending`, of unknown
fate: the sweeper lets status webhooks settle them for a grace period, then re-sends
each at most once (or, with a provider that posts no webhooks, fails them "unknown").
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns.repository import CampaignRepository
from app.config import Settings
from app.contacts.repository import ContactRepository
from app.dispatch.jobs import Jobs
from app.dispatch.lock import campaign_lock_key, try_lock
from app.dispatch.progress import notify_campaign_progress, notify_contacts_changed
from app.dispatch.providers import Outbound, SendResult, Template, WhatsAppProvider
from app.dispatch.quota import DailyQuota, RateLimiter
from app.messages.repository import Claimed, MessageRepository
from app.metrics import record_dispatch
from app.models import CampaignStatus
from app.stats.repository import StatsRepository

logger = logging.getLogger(__name__)

# Lock busy: another step of this campaign is running; try again shortly.
LOCK_RETRY_MS = 500


@dataclass
class Deps:
    settings: Settings
    sessionmaker: Callable[[], AsyncSession]
    redis: Redis
    provider: WhatsAppProvider
    jobs: Jobs


def active_key(campaign_id: int) -> str:
    """Present while some send_batch chain of the campaign is alive (or waiting on quota)."""
    return f"campaign:active:{campaign_id}"


def sweep_key(campaign_id: int) -> str:
    """The token of the campaign's one live sweep chain."""
    return f"campaign:sweep:{campaign_id}"


def _timeout_ms(deps: Deps) -> int:
    return int(deps.settings.dispatch_sending_timeout_s * 1000)


async def _start_lanes(deps: Deps, campaign_id: int) -> None:
    await deps.redis.set(active_key(campaign_id), "1", px=_timeout_ms(deps))
    for _ in range(deps.settings.dispatch_lanes):
        deps.jobs.send_batch(campaign_id)


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
    return max(200, _timeout_ms(deps) // 2)


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
            await session.commit()
    await _start_lanes(deps, campaign_id)
    await _start_sweep_chain(deps, campaign_id, _sweep_interval_ms(deps))
    await notify_campaign_progress(deps.redis, campaign_id, force=True)
    return created


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
        await _mark_active(deps, campaign_id, wait_ms + _timeout_ms(deps))
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
        await _mark_active(deps, campaign_id, _timeout_ms(deps))
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
    await _count(deps, campaign_id, sent=sent, failed=len(results) - sent - len(unknown))
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


async def _count(deps: Deps, campaign_id: int, **outcomes: int) -> None:
    """Add to the dispatch counters of /metrics; they never hold up or fail a dispatch."""
    try:
        await record_dispatch(deps.redis, campaign_id, **outcomes)
    except (RedisError, OSError) as exc:
        logger.warning("campaign %s: dispatch counters not updated: %r", campaign_id, exc)


async def _count_held_back(deps: Deps, campaign_id: int) -> None:
    """Count the messages a quota wait holds back; after the wait is scheduled, so that a
    failure here (logged) can neither stop the chain nor, through a retry, fork it."""
    try:
        async with deps.sessionmaker() as session:
            waiting = (await MessageRepository(session).open_counts(campaign_id)).pending
    except Exception as exc:  # the database's own errors vary by driver; none may escape
        logger.warning("campaign %s: held-back messages not counted: %r", campaign_id, exc)
        return
    await _count(deps, campaign_id, rate_limited=waiting)


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
        await _count(deps, campaign_id, failed=reconciled.failed)
    if reconciled.failed or completed:
        await notify_campaign_progress(deps.redis, campaign_id, force=True)
    sending = campaign is not None and campaign.status == CampaignStatus.SENDING and not completed
    if sending and counts.pending and not await deps.redis.exists(active_key(campaign_id)):
        # Every send chain died with its worker (or re-sends wait): start new ones.
        await _start_lanes(deps, campaign_id)
    return sending or counts.sending > 0


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
    return "campaign:recovering"


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


async def fold_counters(deps: Deps) -> int:
    """Merge the statistics counters' shard rows back into one per campaign; how many went.

    Each concurrent writer may add a row (app/stats), so without this a campaign keeps
    as many rows as it ever had writers at once. Never waits for a writer, nor a writer
    for it, so every worker can run it every recovery round.
    """
    async with deps.sessionmaker() as session:
        folded = await StatsRepository(session).fold()
        await session.commit()
    return folded


async def verify_contacts(deps: Deps, contact_ids: list[int]) -> int:
    """Ask the provider which numbers are on WhatsApp; returns how many were checked."""
    async with deps.sessionmaker() as session:
        phones = await ContactRepository(session).phones(contact_ids)
    if not phones:
        return 0
    availability = await deps.provider.check_contacts(list(phones.values()))
    valid = [cid for cid, phone in phones.items() if availability.get(phone) is True]
    invalid = [cid for cid, phone in phones.items() if availability.get(phone) is False]
    async with deps.sessionmaker() as session:
        await ContactRepository(session).set_availability(valid, invalid)
        await session.commit()
    await notify_contacts_changed(deps.redis)
    return len(valid) + len(invalid)
