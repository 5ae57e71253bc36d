"""What the dispatch actors do, as plain coroutines taking their dependencies (testable directly).

Delivery is at-most-once: a message is committed as `sending` before it goes to the
provider, so a worker that dies mid-batch leaves it `sending`, and the sweeper turns it
into `failed` ("interrupted") instead of sending it again.
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

from app.campaigns.dispatch_repository import CampaignDispatchRepository
from app.config import Settings
from app.contacts.dispatch_repository import ContactDispatchRepository
from app.dispatch.jobs import Jobs
from app.dispatch.lock import campaign_lock_key, try_lock
from app.dispatch.progress import notify_campaign_progress
from app.dispatch.providers import Outbound, SendResult, Template, WhatsAppProvider
from app.dispatch.quota import DailyQuota, RateLimiter
from app.messages.dispatch_repository import Claimed, MessageDispatchRepository
from app.metrics import record_dispatch
from app.models import CampaignStatus

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
    """Replace any earlier chain: an older token finds itself superseded and stops."""
    token = uuid.uuid4().hex
    await deps.redis.set(sweep_key(campaign_id), token, px=delay_ms * 3 + 60_000)
    deps.jobs.sweep(campaign_id, token, delay_ms=delay_ms)


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
            campaign = await CampaignDispatchRepository(session).get(campaign_id)
            if campaign is None or campaign.status != CampaignStatus.SENDING:
                return 0
            created = await MessageDispatchRepository(session).materialize(campaign_id)
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
        campaign = await CampaignDispatchRepository(session).get(campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return None
    quota = DailyQuota(deps.redis, settings.whatsapp_daily_quota)
    granted = await quota.reserve(settings.dispatch_batch_size)
    if granted == 0:
        wait_ms = DailyQuota.ms_until_reset()
        await deps.redis.set(active_key(campaign_id), "1", px=wait_ms + _timeout_ms(deps))
        deps.jobs.send_batch(campaign_id, delay_ms=wait_ms)
        logger.info("campaign %s: daily quota reached, waiting %d s", campaign_id, wait_ms // 1000)
        await _count_held_back(deps, campaign_id)
        return None

    async with deps.sessionmaker() as session:
        claimed = await MessageDispatchRepository(session).claim(campaign_id, granted)
        await session.commit()  # `sending` is durable before anything leaves
    eligible = [m for m in claimed if not (m.opted_out or m.invalid)]
    await quota.refund(granted - len(eligible))
    if not claimed:
        await finish(deps, campaign_id)
        return None
    await deps.redis.set(active_key(campaign_id), "1", px=_timeout_ms(deps))

    template = Template(campaign.template_name, campaign.template_language, campaign.template_body)
    results = await _send_all(deps, template, eligible)
    results += [
        SendResult(m.id, error="opted out" if m.opted_out else "invalid number")
        for m in claimed
        if m.opted_out or m.invalid
    ]
    await _record(deps, results, {m.id: m.contact_id for m in claimed})
    sent = sum(1 for r in results if r.ok)
    await _count(deps, campaign_id, sent=sent, failed=len(results) - sent)
    await notify_campaign_progress(deps.redis, campaign_id)
    return len(claimed)


async def _send_all(deps: Deps, template: Template, batch: list[Claimed]) -> list[SendResult]:
    """Send in rate-limited waves, each at most dispatch_send_concurrency wide."""
    limiter = RateLimiter(deps.redis, deps.settings.whatsapp_rate_per_second)
    width = deps.settings.dispatch_send_concurrency
    results: list[SendResult] = []
    position = 0
    while position < len(batch):
        allowed = await limiter.take(min(width, len(batch) - position))
        wave = batch[position : position + allowed]
        position += allowed
        results += await asyncio.gather(
            *(
                deps.provider.send(
                    template, Outbound(m.id, m.contact_id, m.phone, m.name, m.attributes)
                )
                for m in wave
            )
        )
    return results


async def _record(deps: Deps, results: list[SendResult], contact_of: dict[int, int]) -> None:
    sent = [r for r in results if r.ok]
    failed = [r for r in results if not r.ok]
    async with deps.sessionmaker() as session:
        messages = MessageDispatchRepository(session)
        await messages.record_sent(
            [r.message_id for r in sent], [r.provider_message_id or "" for r in sent]
        )
        await messages.record_failed(
            [r.message_id for r in failed], [r.error or "failed" for r in failed]
        )
        await ContactDispatchRepository(session).mark_invalid(
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
            waiting = (await MessageDispatchRepository(session).open_counts(campaign_id)).pending
    except Exception as exc:  # the database's own errors vary by driver; none may escape
        logger.warning("campaign %s: held-back messages not counted: %r", campaign_id, exc)
        return
    await _count(deps, campaign_id, rate_limited=waiting)


async def finish(deps: Deps, campaign_id: int) -> bool:
    """Fail interrupted messages and complete the campaign if nothing is left open.

    Returns whether the campaign is still dispatching (has open messages or is sending).
    """
    lock_key = campaign_lock_key(campaign_id)
    async with try_lock(deps.redis, lock_key, deps.settings.dispatch_lock_ttl_ms) as locked:
        if not locked:
            # Someone else holds the campaign; look again shortly rather than miss the end.
            deps.jobs.send_batch(campaign_id, delay_ms=LOCK_RETRY_MS)
            return True
        async with deps.sessionmaker() as session:
            messages = MessageDispatchRepository(session)
            campaigns = CampaignDispatchRepository(session)
            swept = await messages.fail_interrupted(
                campaign_id, deps.settings.dispatch_sending_timeout_s
            )
            completed = await campaigns.complete_if_done(campaign_id)
            counts = await messages.open_counts(campaign_id)
            campaign = await campaigns.get(campaign_id)
            await session.commit()
    if swept:
        logger.warning("campaign %s: %d interrupted messages marked failed", campaign_id, swept)
        await _count(deps, campaign_id, failed=swept)
    if swept or completed:
        await notify_campaign_progress(deps.redis, campaign_id, force=True)
    sending = campaign is not None and campaign.status == CampaignStatus.SENDING
    if sending and counts.pending and not await deps.redis.exists(active_key(campaign_id)):
        # Every send chain died with its worker: start new ones.
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
        await deps.redis.set(sweep_key(campaign_id), token, px=delay * 3 + 60_000)
        deps.jobs.sweep(campaign_id, token, delay_ms=delay)
    elif current is not None:
        await deps.redis.delete(sweep_key(campaign_id))


async def start_scheduled(deps: Deps, campaign_id: int) -> bool:
    """scheduled → sending when due; a campaign rescheduled later or started by hand is skipped."""
    async with deps.sessionmaker() as session:
        started = await CampaignDispatchRepository(session).start_if_due(
            campaign_id, datetime.now(UTC)
        )
        await session.commit()
    if started:
        await materialize(deps, campaign_id)
    return started


async def recover(deps: Deps) -> None:
    """On worker boot: restart campaigns whose chains may have died with an old worker."""
    # Every process of a starting worker sends one; the first within 5 s does the work.
    if not await deps.redis.set("campaign:recovering", "1", nx=True, ex=5):
        return
    async with deps.sessionmaker() as session:
        sending = await CampaignDispatchRepository(session).ids_with_status(CampaignStatus.SENDING)
        stuck = await MessageDispatchRepository(session).campaigns_with_sending()
    for campaign_id in sending:
        deps.jobs.materialize(campaign_id)
    for campaign_id in set(stuck) - set(sending):
        await _start_sweep_chain(deps, campaign_id, _sweep_interval_ms(deps))


async def verify_contacts(deps: Deps, contact_ids: list[int]) -> int:
    """Ask the provider which numbers are on WhatsApp; returns how many were checked."""
    async with deps.sessionmaker() as session:
        phones = await ContactDispatchRepository(session).phones(contact_ids)
    if not phones:
        return 0
    availability = await deps.provider.check_contacts(list(phones.values()))
    valid = [cid for cid, phone in phones.items() if availability.get(phone) is True]
    invalid = [cid for cid, phone in phones.items() if availability.get(phone) is False]
    async with deps.sessionmaker() as session:
        await ContactDispatchRepository(session).set_availability(valid, invalid)
        await session.commit()
    return len(valid) + len(invalid)
