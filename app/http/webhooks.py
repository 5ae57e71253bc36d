"""WhatsApp webhook: the subscription handshake, signed status updates, inbound messages and
template status changes (a template WhatsApp paused or disabled pauses its campaigns).

Events are applied with forward-only conditional UPDATEs in one short transaction, so
the provider gets its 2xx fast and redeliveries or out-of-order events change nothing.
A failed status carries the Cloud API's error code, and its class (app/whatsapp/errors.py)
decides as for a send's answer: the message fails, or goes back to pending (retry-later,
slow-down, campaign-stopping) while its campaign may still send; a slow-down error also
halves the shared send rate, a campaign-stopping one pauses the campaigns it touches.
A signed delivery is still untrusted input: each item is checked (types, lengths, no NUL,
timestamps in range) and applied in a savepoint of its own, so one malformed or failing
item is logged and skipped while the others are applied. The answer is 200 once what was
applied is committed, and 503 when it could not be (the provider then delivers again).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.campaigns.dispatch import active_key
from app.campaigns.repository import CampaignRepository
from app.campaigns.service import CampaignDispatchService
from app.changes import Changes, changes_of, committed_changes, nested
from app.changes.apply import apply_changes
from app.config import Env, Settings
from app.contacts.repository import ContactRepository
from app.ids import parse_key
from app.interactions.repository import InteractionRepository
from app.messages.repository import MessageRepository
from app.models import InteractionKind, MessageStatus
from app.process.runtime import Runtime
from app.senders.events import account_changes, apply_account_changes, follow_up
from app.senders.repository import SenderRepository
from app.senders.service import DEFAULT_NUMBER_ID
from app.templates.service import HALTING, TemplateService
from app.whatsapp.errors import ErrorClass, Rule, classify
from app.whatsapp.pacing import Pacer

logger = logging.getLogger(__name__)

# Replies that mean "stop messaging me" (English and French, as the audience is).
STOP_WORDS = frozenset(
    {
        "stop",
        "stop all",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "arret",
        "arreter",
        "desabonner",
        "desinscrire",
        "stop promotions",
    }
)
_STATUSES = {s.value: s for s in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ)}
_STATUSES["failed"] = MessageStatus.FAILED


def is_stop(text: str) -> bool:
    normalized = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    normalized = " ".join(normalized.lower().strip(" .!?\t\n").split())
    return normalized in STOP_WORDS


def signature_ok(settings: Settings, body: bytes, header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    if not settings.whatsapp_app_secret and settings.env is Env.PROD:
        return False  # an unset secret would make every forged signature "valid"
    expected = hmac.new(settings.whatsapp_app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header.removeprefix("sha256="))


async def verify_subscription(request: Request) -> Response:
    """GET handshake: echo hub.challenge when the verify token matches."""
    settings = request.app.state.runtime.settings
    params = request.query_params
    token = settings.whatsapp_verify_token
    if (
        params.get("hub.mode") == "subscribe"
        and token
        and hmac.compare_digest(params.get("hub.verify_token", ""), token)
    ):
        return PlainTextResponse(params.get("hub.challenge", ""))
    return PlainTextResponse("forbidden", status_code=403)


async def receive(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    body = await request.body()
    if not signature_ok(runtime.settings, body, request.headers.get("x-hub-signature-256")):
        return PlainTextResponse("bad signature", status_code=401)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return PlainTextResponse("bad json", status_code=400)
    try:
        async with runtime.sessionmaker() as session:
            handler = _Handler(session)
            for kind, item, number in _items(payload):
                await handler.apply(kind, item, number)
            changes = account_changes(payload)
            account = await apply_account_changes(session, runtime.settings, changes)
            await session.commit()
    except (OSError, SQLAlchemyError):
        logger.warning("webhook delivery not recorded: the database is unavailable")
        return PlainTextResponse("unavailable", status_code=503)
    await _follow_up(runtime, handler.effects, committed_changes(session))
    await follow_up(runtime.redis, account)
    return Response(b'{"status":"ok"}', media_type="application/json")


@dataclass
class _Effects:
    """What applied items call for once committed, besides their changes (app/changes)."""

    slowed: set[str] = field(default_factory=set)  # sender numbers told to slow down
    requeued: dict[int, float] = field(default_factory=dict)  # campaign → first due, s

    def merge(self, other: _Effects) -> None:
        self.slowed |= other.slowed
        for campaign_id, due in other.requeued.items():
            self.requeued[campaign_id] = min(due, self.requeued.get(campaign_id, due))


async def _follow_up(runtime: Runtime, effects: _Effects, changes: Changes) -> None:
    """The changes applied (progress, contacts, pauses), the sender numbers' rates halved,
    and a send chain for campaigns whose requeued messages no chain will pick up (none is
    active). Best effort: the sweeper restarts chains of a sending campaign with pending
    messages anyway."""
    await apply_changes(runtime.redis, changes)
    settings = runtime.settings
    try:
        for number in effects.slowed:
            number = number or settings.whatsapp_phone_number_id or DEFAULT_NUMBER_ID
            async with runtime.sessionmaker() as session:
                found = await SenderRepository(session).by_phone_number_id(number)
            rate = found.throughput if found else settings.whatsapp_rate_per_second
            await Pacer(runtime.redis, rate, settings.whatsapp_rate_recovery_s, number).slow_down()
        timeout_ms = int(settings.dispatch_sending_timeout_s * 1000)
        for campaign_id, due_s in effects.requeued.items():
            delay_ms = int(due_s * 1000)
            key = active_key(campaign_id)
            if await runtime.redis.set(key, "1", nx=True, px=delay_ms + timeout_ms):
                runtime.jobs.send_batch(campaign_id, delay_ms=delay_ms)
    except (RedisError, OSError, SQLAlchemyError) as exc:
        logger.warning("webhook follow-up (send rate, send chains) not done: %r", exc)


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a list (anything else in it, or a list that is not one, is dropped)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _items(payload: Any) -> list[tuple[str, dict[str, Any], str]]:
    """("statuses" | "messages", event, the business number's phone number id) for every
    event object of a delivery, and ("template", change, "") for every template status
    change."""
    if not isinstance(payload, dict):
        return []
    items = []
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            if change.get("field") == "message_template_status_update":
                items.append(("template", value, ""))
            elif change.get("field") == "messages":
                number = _number(value)
                items += [
                    (k, item, number)
                    for k in ("statuses", "messages")
                    for item in _dicts(value.get(k))
                ]
    return items


def _number(value: dict[str, Any]) -> str:
    metadata = value.get("metadata")
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    return _text(number, _MAX_ID) or ""


_MAX_TEXT = 4096  # a WhatsApp text message holds at most 4,096 characters
_MAX_ID = 256


def _text(value: Any, limit: int = _MAX_TEXT) -> str | None:
    """A string fit to store: at most `limit` characters, without NUL (which PostgreSQL's
    text refuses); None for anything else."""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        return None
    return value


def _timestamp(event: dict[str, Any]) -> datetime:
    """The event's time; now when it is missing or no plausible Unix time."""
    try:
        seconds = int(event["timestamp"])
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)
    if not 0 <= seconds < 2**33:  # until the year 2242
        return datetime.now(UTC)
    return datetime.fromtimestamp(seconds, UTC)


class _Handler:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.messages = MessageRepository(session)
        self.contacts = ContactRepository(session)
        self.interactions = InteractionRepository(session)
        self.changes = changes_of(session)
        self.effects = _Effects()  # of the items applied so far
        self.item = _Effects()  # of the item being applied
        self.number = ""  # the business number of the item being applied

    async def apply(self, kind: str, event: dict[str, Any], number: str) -> None:
        """One event in a savepoint of its own, recording the progress of the campaigns it
        touched; a malformed or failing one is logged, and undone with what it recorded,
        without undoing the others."""
        self.item = _Effects()
        self.number = number
        try:
            async with nested(self.session):
                if kind == "statuses":
                    touched = await self.status(event)
                elif kind == "template":
                    touched = await self.template(event)
                else:
                    touched = await self.inbound(event)
                for campaign_id in touched:
                    self.changes.campaign_progress(campaign_id)
        except Exception as exc:
            if isinstance(exc, OSError) or (
                isinstance(exc, DBAPIError) and exc.connection_invalidated
            ):
                raise  # the database, not the item: the delivery is answered 503
            logger.exception("webhook %s item skipped: %s", kind, type(exc).__name__)
            return
        self.effects.merge(self.item)

    async def status(self, event: dict[str, Any]) -> set[int]:
        status = _STATUSES.get(str(event.get("status")))
        wamid = _text(event.get("id"), _MAX_ID)
        if status is None or wamid is None:
            logger.warning("webhook status item skipped: no known status or id")
            return set()
        message_id = parse_key(_text(event.get("biz_opaque_callback_data"), _MAX_ID) or "")
        [error] = _dicts(event.get("errors"))[:1] or [{}]
        code = error.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        title = _text(error.get("title"), 512) or _text(error.get("message"), 512) or ""
        reason = f"{code or ''}: {title}".strip(": ")
        rule = classify(code) if status is MessageStatus.FAILED and code is not None else None
        if rule is not None and rule.kind is not ErrorClass.MESSAGE_FINAL:
            matched = await self.send_again(rule, wamid, message_id)
            if matched:
                await self.stop(rule, code, matched)
                return {campaign_id for campaign_id, _ in matched}
        matched = await self.messages.apply_status(
            status, wamid, message_id, _timestamp(event), error=reason or None, code=code
        )
        if rule is not None and rule.undeliverable:
            await self.contacts.mark_invalid([contact_id for _, contact_id in matched])
            self.changes.contacts()
        await self.stop(rule, code, matched)
        return {campaign_id for campaign_id, _ in matched}

    async def send_again(
        self, rule: Rule, wamid: str, message_id: int | None
    ) -> list[tuple[int, int]]:
        """Back to pending, if its campaign may still send and it has deferrals left."""
        later = rule.kind is ErrorClass.RETRY_LATER
        delay = rule.retry_after_s if later else 0.0
        # Only retry-later errors count against an allowance; the others put it back as
        # often as they come (a slow-down paces it, a stop pauses its campaign).
        allowed = rule.deferrals if later else 2**15 - 1
        matched = await self.messages.requeue(wamid, message_id, delay, later, allowed)
        for campaign_id, _ in matched:
            self.item.requeued[campaign_id] = delay
        if matched and rule.kind is ErrorClass.SLOW_DOWN:
            self.item.slowed.add(self.number)
        return matched

    async def stop(
        self, rule: Rule | None, code: int | None, matched: list[tuple[int, int]]
    ) -> None:
        """A campaign-stopping error pauses what it touches, judged by the template of the
        message's campaign."""
        stopping = rule is not None and rule.kind is ErrorClass.CAMPAIGN_STOPPING
        if not stopping or code is None or not matched:
            return
        campaign = await CampaignRepository(self.session).get(matched[0][0])
        if campaign is None:
            return
        template = (campaign.template_name, campaign.template_language)
        await CampaignDispatchService(self.session).pause_for_error(code, template)

    async def template(self, change: dict[str, Any]) -> set[int]:
        """A template's new status; paused or disabled by WhatsApp, its sending and
        scheduled campaigns are paused as a send's 132015 or 132016 would pause them."""
        reported = await TemplateService(self.session).report(change)
        if reported is None or reported.status not in HALTING:
            return set()
        code = HALTING[reported.status]
        paused = await CampaignDispatchService(self.session).pause_for_error(code, reported.key)
        return set(paused.campaign_ids)

    async def inbound(self, event: dict[str, Any]) -> set[int]:
        sender = _text(event.get("from"), 32)
        event_id = _text(event.get("id"), _MAX_ID)
        if sender is None or event_id is None or not sender.lstrip("+").isdigit():
            logger.warning("webhook message item skipped: no sender number or id")
            return set()
        phone = "+" + sender.lstrip("+")
        await self.contacts.wrote(phone, _timestamp(event))
        kind, text = _classify(event)
        opted_out = kind is InteractionKind.REPLY and is_stop(text)
        if opted_out:
            kind = InteractionKind.OPT_OUT
            await self.contacts.opt_out(phone)
            self.changes.contacts()
        context = event.get("context")
        context_id = _text(context.get("id"), _MAX_ID) if isinstance(context, dict) else None
        message = await self.messages.for_inbound(context_id, phone)
        if message is None:
            return set()
        await self.interactions.add(message.id, kind.value, event_id, {"text": text})
        return {message.campaign_id}


def _classify(event: dict[str, Any]) -> tuple[InteractionKind, str]:
    kind = event.get("type")
    if kind == "reaction":
        return InteractionKind.REACTION, _field(event, "reaction", "emoji")
    if kind == "button":
        text = _field(event, "button", "text") or _field(event, "button", "payload")
        # Meta's marketing opt-out button arrives as a quick reply.
        return (InteractionKind.REPLY if is_stop(text) else InteractionKind.CLICK), text
    if kind == "interactive":
        text = _field(event, "interactive", "button_reply", "title") or _field(
            event, "interactive", "list_reply", "title"
        )
        return InteractionKind.CLICK, text
    return InteractionKind.REPLY, _field(event, "text", "body")


def _field(event: dict[str, Any], *path: str) -> str:
    """The text at `path` in nested objects; empty when any step is missing or malformed."""
    value: Any = event
    for name in path:
        value = value.get(name) if isinstance(value, dict) else None
    return _text(value) or ""


routes = [
    Route("/webhooks/whatsapp", verify_subscription, methods=["GET"]),
    Route("/webhooks/whatsapp", receive, methods=["POST"]),
]
