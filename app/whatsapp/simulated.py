"""A stand-in WhatsApp provider for demos: latency, failures, and the callbacks a real one
would post to Herald's own webhook."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
import uuid
from collections.abc import Coroutine
from typing import Any

import httpx
import orjson

from app.config import Settings
from app.whatsapp.errors import ERRORS
from app.whatsapp.providers import Outbound, SendResult, Template, sign

logger = logging.getLogger(__name__)

UNDELIVERABLE = 131026  # the Cloud API's "message undeliverable"


class SimulatedProvider:
    """A stand-in provider: latency, failures, and the callbacks a real one would post.

    Deterministic per number (the same numbers are always undeliverable) so a retried
    campaign behaves like the real thing. Callbacks go to Herald's own webhook, which is
    busy dispatching the same campaign: at most `simulated_callback_concurrency` posts are
    in flight per process (over as many pooled connections, so none waits for the pool),
    and a post that fails is tried again with backoff. Redelivery is harmless (statuses
    only move forward, inbound events are keyed by their id). A callback given up on is
    counted in `callbacks_lost` and logged at WARNING: the demo then has a message stuck
    in `sent`, which must never happen silently.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        width = settings.simulated_callback_concurrency
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, pool=None),
            limits=httpx.Limits(
                max_connections=width,
                max_keepalive_connections=width,
                keepalive_expiry=settings.whatsapp_http_keepalive_s,
            ),
        )
        self.callbacks_posted = 0
        self.callbacks_retried = 0
        self.callbacks_lost = 0
        self._slots = asyncio.Semaphore(width)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reported = False

    @property
    def webhook_url(self) -> str:
        s = self.settings
        return s.whatsapp_webhook_url or f"http://{s.host}:{s.port}/webhooks/whatsapp"

    def _undeliverable(self, phone: str) -> bool:
        digest = hashlib.sha256(phone.encode()).digest()
        return digest[0] / 256 < self.settings.simulated_failure_rate

    async def send(self, template: Template, message: Outbound) -> SendResult:
        latency = self.settings.simulated_latency_ms / 1000
        if latency:
            await asyncio.sleep(latency * random.uniform(0.5, 1.5))
        if self._undeliverable(message.phone):
            return SendResult(
                message.message_id,
                error=f"{UNDELIVERABLE}: {ERRORS[UNDELIVERABLE].title}",
                code=UNDELIVERABLE,
                http_status=400,
            )
        wamid = f"wamid.sim.{uuid.uuid4().hex}"
        if not self._reported:
            self._reported = True  # as a new portfolio's first business_capability_update
            self._spawn(self.post_callback(orjson.dumps(_capability(self.settings))))
        self._spawn(self._callbacks(message, wamid))
        return SendResult(message.message_id, provider_message_id=wamid)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _callbacks(self, message: Outbound, wamid: str) -> None:
        """Post delivered, usually read, and sometimes a reply, like the Cloud API would."""
        wa_id = message.phone.lstrip("+")
        events: list[dict[str, Any]] = [_status(wamid, "delivered", wa_id, message.message_id)]
        if random.random() < 0.7:
            events.append(_status(wamid, "read", wa_id, message.message_id))
        if random.random() < self.settings.simulated_reply_rate:
            text = "STOP" if random.random() < 0.2 else "Thanks!"
            events.append(_reply(wamid, wa_id, text))
        for event in events:
            await asyncio.sleep(random.uniform(0.5, 2.0))
            if not await self.post_callback(orjson.dumps(event)):
                return  # later events of this message would arrive out of order anyway

    async def post_callback(self, body: bytes) -> bool:
        """Post one signed callback, retried on connection errors, timeouts, 429 and 5xx;
        False once given up on."""
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(self.settings.whatsapp_app_secret, body),
        }
        attempts = self.settings.simulated_callback_attempts
        problem = ""
        for attempt in range(attempts):
            if attempt:
                self.callbacks_retried += 1
                base = self.settings.simulated_callback_backoff_ms / 1000
                await asyncio.sleep(min(base * 2 ** (attempt - 1), 10.0) * random.uniform(0.5, 1))
            try:
                async with self._slots:
                    response = await self.client.post(
                        self.webhook_url, content=body, headers=headers
                    )
            except httpx.TransportError as exc:
                problem = repr(exc)
                continue
            if response.status_code < 300:
                self.callbacks_posted += 1
                return True
            problem = f"HTTP {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                break  # refused (bad signature, bad payload): trying again changes nothing
        self.callbacks_lost += 1
        logger.warning(
            "simulated callback to %s lost after %d attempts (%s); %d lost so far",
            self.webhook_url,
            attempt + 1,
            problem,
            self.callbacks_lost,
        )
        return False

    async def check_contacts(self, phones: list[str]) -> dict[str, bool]:
        return {phone: not self._undeliverable(phone) for phone in phones}

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.client.aclose()


def _envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
    }


def _capability(settings: Settings) -> dict[str, Any]:
    limit = settings.simulated_messaging_limit
    value = {
        "max_daily_conversation_per_phone": limit,
        "max_daily_conversations_per_business": limit,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "0", "changes": [{"field": "business_capability_update", "value": value}]}
        ],
    }


def _status(wamid: str, status: str, wa_id: str, message_id: int) -> dict[str, Any]:
    return _envelope(
        {
            "messaging_product": "whatsapp",
            "statuses": [
                {
                    "id": wamid,
                    "status": status,
                    "timestamp": str(int(time.time())),
                    "recipient_id": wa_id,
                    "biz_opaque_callback_data": str(message_id),
                }
            ],
        }
    )


def _reply(wamid: str, wa_id: str, text: str) -> dict[str, Any]:
    return _envelope(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"wa_id": wa_id, "profile": {"name": ""}}],
            "messages": [
                {
                    "from": wa_id,
                    "id": f"wamid.in.{uuid.uuid4().hex}",
                    "timestamp": str(int(time.time())),
                    "type": "text",
                    "text": {"body": text},
                    "context": {"id": wamid},
                }
            ],
        }
    )
