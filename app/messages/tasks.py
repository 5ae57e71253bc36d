"""A campaign's send chains: claim a batch of its messages, send them, record the outcome.

A message is committed as `sending` before it goes to the provider, and a live worker
always records what it knows: sent with the provider's id, failed with its error, or back
to pending when it never left or its error's class sends it again later
(app/whatsapp/errors.py). What a dead worker left `sending` is settled by the campaign's
sweeper (app/campaigns/tasks.py; what chains and sweeper share: app/campaigns/dispatch.py). A
batch goes through one sender number (the campaign's, or one of the pool's), at that number's
rate, under the portfolio's messaging limit (app/messages/reach.py): what the limit refuses
waits for the window to slide, and the chain sleeps until the first of it may go.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.exceptions import RedisError

from app.campaigns.dispatch import (
    active_key,
    count_dispatch,
    finish,
    sending_timeout_ms,
)
from app.campaigns.halts import halt_key
from app.campaigns.repository import CampaignRepository
from app.campaigns.service import CampaignDispatchService
from app.campaigns.waits import mark_window_wait, window_key
from app.changes import Changes, changes_of, committed_changes
from app.changes.apply import apply_changes
from app.deps import Deps
from app.messages.outcomes import Recorded, record
from app.messages.reach import Gate, admit, at, settle
from app.messages.repository import Claimed, MessageRepository
from app.models import CampaignStatus
from app.senders.numbers import Number
from app.senders.service import Route, SenderService, unavailable
from app.templates.service import parameter_sources
from app.whatsapp.errors import ErrorClass, classify
from app.whatsapp.pacing import Pacer
from app.whatsapp.providers import Outbound, SendResult, Template

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
            return total  # paused, cancelled, done, or waiting for the window: chain ends
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
        route = await SenderService(session, settings).route(campaign.sender_number_id)
        await session.commit()  # the default number, the first time it is needed
    if route.number is None:
        await _pause_unrouted(deps, campaign_id, route)
        return None

    async with deps.sessionmaker() as session:
        messages = MessageRepository(session)
        claimed = await messages.claim(campaign_id, settings.dispatch_batch_size, at(deps.clock()))
        await session.commit()  # `sending` is durable before anything leaves
    eligible = [m for m in claimed if not (m.opted_out or m.invalid)]
    if not claimed:
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
    gate = Gate()
    try:
        gate = await admit(deps, route.limit.limit, eligible)
        unsent -= {message_id for message_id, _ in gate.waiting}
        await _mark_active(deps, campaign_id, sending_timeout_ms(deps), sending=True)
        template = Template(
            campaign.template_name,
            campaign.template_language,
            campaign.template_body,
            parameter_sources(campaign.template_parameters),
        )
        halted = await _send_all(
            deps, campaign_id, template, route.number, gate.admitted, results, unsent
        )
    finally:
        async with deps.sessionmaker() as session:
            contact_of = {m.id: m.contact_id for m in claimed}
            recorded = await record(session, results, skipped, contact_of)
            await MessageRepository(session).release(sorted(unsent))
            await MessageRepository(session).wait_for_window(gate.waiting)
            changes = changes_of(session)
            changes.campaign_progress(campaign_id)
            if recorded.invalid:
                changes.contacts()  # numbers found invalid
            await session.commit()
        await settle(deps, gate, results, unsent)
    await _after(deps, campaign, recorded, committed_changes(session))
    if gate.waiting:
        await _wait_for_window(deps, campaign_id, gate, route)
        return None
    return None if halted else len(claimed)


async def _wait_for_window(deps: Deps, campaign_id: int, gate: Gate, route: Route) -> None:
    """The limit is reached: this chain sleeps in the broker until the first refused
    message's slot frees (the campaign stays sending, and shows until when it waits)."""
    first = gate.first_free
    assert first is not None
    wait_ms = max(1, int((first.timestamp() - deps.clock()) * 1000) + 1)
    await _mark_active(deps, campaign_id, wait_ms + sending_timeout_ms(deps))
    deps.jobs.send_batch(campaign_id, delay_ms=wait_ms)
    logger.info(
        "campaign %s: messaging limit of %s reached; %d messages wait for the 24 h window to "
        "slide, the first until %s (%d s)",
        campaign_id,
        route.limit.limit,
        len(gate.waiting),
        first.isoformat(timespec="seconds"),
        wait_ms // 1000,
    )
    await mark_window_wait(deps.redis, campaign_id, first.timestamp(), wait_ms)
    await count_dispatch(deps, campaign_id, rate_limited=len(gate.waiting))


async def _pause_unrouted(deps: Deps, campaign_id: int, route: Route) -> None:
    """No number the campaign may use takes traffic: pause it, saying why."""
    async with deps.sessionmaker() as session:
        service = CampaignDispatchService(session)
        await service.pause_bound(unavailable(route.reason), None, campaign_id)
        await session.commit()
    await apply_changes(deps.redis, committed_changes(session))


async def _after(deps: Deps, campaign: Any, recorded: Recorded, changes: Changes) -> None:
    """Counters, the batch's changes (progress, numbers found invalid), and the pauses a
    campaign-stopping error calls for."""
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
    await apply_changes(deps.redis, changes)
    template = (campaign.template_name, campaign.template_language)
    for code in recorded.stopping_codes:
        async with deps.sessionmaker() as session:
            await CampaignDispatchService(session).pause_for_error(code, template)
            await session.commit()
        await apply_changes(deps.redis, committed_changes(session))


async def _wait_for_deferred(deps: Deps, campaign_id: int) -> None:
    """Nothing to claim: if messages wait for their retry-later time, this chain sleeps in
    the broker until the first is due; otherwise it ends, and its activity mark with it,
    so that a message an error webhook puts back finds no chain and starts one."""
    async with deps.sessionmaker() as session:
        wait_s = await MessageRepository(session).next_due_s(campaign_id, at(deps.clock()))
    if wait_s is None:
        try:
            await deps.redis.delete(active_key(campaign_id))
        except RedisError as exc:
            logger.warning("campaign %s: active mark not removed: %s", campaign_id, exc)
        return
    delay_ms = int(wait_s * 1000) + 1
    await _mark_active(deps, campaign_id, delay_ms + sending_timeout_ms(deps))
    deps.jobs.send_batch(campaign_id, delay_ms=delay_ms)


async def _mark_active(deps: Deps, campaign_id: int, ttl_ms: int, sending: bool = False) -> None:
    """Best effort: a missing mark only lets the sweeper start a spare chain (harmless).
    `sending`: the campaign no longer waits for the messaging limit's window (if it did)."""
    try:
        pipe = deps.redis.pipeline(transaction=False)
        pipe.set(active_key(campaign_id), "1", px=ttl_ms)
        if sending:
            pipe.delete(window_key(campaign_id))
        await pipe.execute()
    except RedisError as exc:
        logger.warning("campaign %s: active mark not set: %s", campaign_id, exc)


async def _send_all(
    deps: Deps,
    campaign_id: int,
    template: Template,
    number: Number,
    batch: list[Claimed],
    results: list[SendResult],
    unsent: set[int],
) -> bool:
    """Send in paced waves, each at most dispatch_send_concurrency wide; True when halted.

    Takes each wave's ids out of `unsent` as it leaves and appends its results when it
    returns, so a failing Redis call leaves an exact account of what went out. A
    slow-down error halves the number's rate; a campaign-stopping one, here or in another
    chain (the campaign's halt mark), stops the batch: the rest stays unsent.
    """
    settings = deps.settings
    sender = number.phone_number_id
    pacer = Pacer(deps.redis, number.throughput, settings.whatsapp_rate_recovery_s, sender)
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
                    template,
                    Outbound(m.id, m.contact_id, m.phone, m.name, m.attributes, sender),
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
