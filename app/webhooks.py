"""WhatsApp webhook: the subscription handshake, signed status updates and inbound messages.

Events are applied with forward-only conditional UPDATEs in one short transaction, so
the provider gets its 2xx fast and redeliveries or out-of-order events change nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import unicodedata
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from app.campaigns.progress import notify_campaign_progress, notify_contacts_changed
from app.config import Env, Settings
from app.contacts.repository import ContactRepository
from app.ids import parse_key
from app.interactions.repository import InteractionRepository
from app.messages.repository import MessageRepository
from app.models import InteractionKind, MessageStatus
from app.runtime import Runtime
from app.whatsapp.providers import UNDELIVERABLE

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
    campaigns: set[int] = set()
    async with runtime.sessionmaker() as session:
        handler = _Handler(session)
        for value in _values(payload):
            for status in value.get("statuses") or []:
                campaigns |= await handler.status(status)
            for message in value.get("messages") or []:
                campaigns |= await handler.inbound(message)
        await session.commit()
    for campaign_id in campaigns:
        await notify_campaign_progress(runtime.redis, campaign_id)
    if handler.contacts_changed:
        await notify_contacts_changed(runtime.redis)
    return Response(b'{"status":"ok"}', media_type="application/json")


def _values(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, dict):
        return []
    return [
        change.get("value") or {}
        for entry in payload.get("entry") or []
        for change in entry.get("changes") or []
        if change.get("field") == "messages"
    ]


def _timestamp(event: dict[str, Any]) -> datetime:
    try:
        return datetime.fromtimestamp(int(event["timestamp"]), UTC)
    except (KeyError, TypeError, ValueError):
        return datetime.now(UTC)


class _Handler:
    def __init__(self, session: AsyncSession) -> None:
        self.messages = MessageRepository(session)
        self.contacts = ContactRepository(session)
        self.interactions = InteractionRepository(session)
        self.contacts_changed = False  # an opt-out or an invalid number: contact lists move

    async def status(self, event: dict[str, Any]) -> set[int]:
        status = _STATUSES.get(str(event.get("status")))
        wamid = event.get("id")
        if status is None or not isinstance(wamid, str):
            return set()
        opaque = str(event.get("biz_opaque_callback_data") or "")
        message_id = parse_key(opaque)
        errors = event.get("errors") or [{}]
        code = errors[0].get("code")
        reason = f"{code}: {errors[0].get('title') or errors[0].get('message') or ''}".strip(": ")
        matched = await self.messages.apply_status(
            status, wamid, message_id, _timestamp(event), error=reason or None
        )
        if status is MessageStatus.FAILED and code == UNDELIVERABLE:
            await self.contacts.mark_invalid([contact_id for _, contact_id in matched])
            self.contacts_changed = True
        return {campaign_id for campaign_id, _ in matched}

    async def inbound(self, event: dict[str, Any]) -> set[int]:
        sender = event.get("from")
        event_id = event.get("id")
        if not isinstance(sender, str) or not isinstance(event_id, str):
            return set()
        phone = "+" + sender.lstrip("+")
        kind, text = _classify(event)
        opted_out = kind is InteractionKind.REPLY and is_stop(text)
        if opted_out:
            kind = InteractionKind.OPT_OUT
            await self.contacts.opt_out(phone)
            self.contacts_changed = True
        context_id = (event.get("context") or {}).get("id")
        message = await self.messages.for_inbound(context_id, phone)
        if message is None:
            return set()
        await self.interactions.add(message.id, kind.value, event_id, {"text": text})
        return {message.campaign_id}


def _classify(event: dict[str, Any]) -> tuple[InteractionKind, str]:
    kind = event.get("type")
    if kind == "reaction":
        return InteractionKind.REACTION, str((event.get("reaction") or {}).get("emoji", ""))
    if kind == "button":
        button = event.get("button") or {}
        text = str(button.get("text") or button.get("payload") or "")
        # Meta's marketing opt-out button arrives as a quick reply.
        return (InteractionKind.REPLY if is_stop(text) else InteractionKind.CLICK), text
    if kind == "interactive":
        reply = event.get("interactive") or {}
        chosen = reply.get("button_reply") or reply.get("list_reply") or {}
        return InteractionKind.CLICK, str(chosen.get("title", ""))
    return InteractionKind.REPLY, str((event.get("text") or {}).get("body", ""))


routes = [
    Route("/webhooks/whatsapp", verify_subscription, methods=["GET"]),
    Route("/webhooks/whatsapp", receive, methods=["POST"]),
]
