"""WhatsApp providers behind one interface: the Cloud API over HTTP, and a simulator for demos."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import re
import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from app.config import Provider as ProviderKind
from app.config import Settings

logger = logging.getLogger(__name__)

# Cloud API error code for "message undeliverable": not on WhatsApp or an outdated app.
UNDELIVERABLE = 131026
_VARIABLE = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


class ProviderError(Exception):
    """The provider answered a request that is safe to repeat with an error."""


@dataclass(frozen=True)
class Template:
    name: str
    language: str
    body: str

    def variables(self) -> list[str]:
        """Placeholder names in order of first appearance (`{{1}}` or `{{first_name}}`)."""
        seen: dict[str, None] = {}
        for match in _VARIABLE.finditer(self.body):
            seen.setdefault(match.group(1))
        return list(seen)


@dataclass(frozen=True)
class Outbound:
    message_id: int
    contact_id: int
    phone: str
    name: str | None
    attributes: dict[str, Any]


@dataclass(frozen=True)
class SendResult:
    message_id: int
    provider_message_id: str | None = None
    error: str | None = None
    # The number cannot receive WhatsApp messages: mark the contact invalid, never retry.
    undeliverable: bool = False
    # The request may or may not have reached the provider (e.g. a read timeout): the
    # message stays `sending` and is reconciled like a dead worker's, never re-sent blindly.
    unknown: bool = False

    @property
    def ok(self) -> bool:
        return self.provider_message_id is not None


class WhatsAppProvider(Protocol):
    async def send(self, template: Template, message: Outbound) -> SendResult: ...

    async def check_contacts(self, phones: list[str]) -> dict[str, bool]: ...

    async def aclose(self) -> None: ...


def template_payload(template: Template, message: Outbound) -> dict[str, Any]:
    """The Cloud API template message, variables filled from the contact's attributes."""
    parameters = []
    for variable in template.variables():
        value = message.attributes.get(variable)
        if value is None and variable == "name":
            value = message.name
        parameter: dict[str, Any] = {"type": "text", "text": "" if value is None else str(value)}
        if not variable.isdigit():
            parameter["parameter_name"] = variable
        parameters.append(parameter)
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if parameters:
        body["components"] = [{"type": "body", "parameters": parameters}]
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": message.phone.lstrip("+"),
        "type": "template",
        "template": body,
        # Echoed back in status webhooks, so a status can be matched even when the
        # worker died before recording the provider's message id.
        "biz_opaque_callback_data": str(message.message_id),
    }


class CloudApiProvider:
    """WhatsApp Business Cloud API: POST {base}/{phone_number_id}/messages.

    Requests go straight to a set of single-connection httpx transports. Measured on the
    2-core bench: one AsyncClient with a 64-connection pool spent ~2 ms of CPU per
    message (httpcore scans the whole pool on every request); single-connection clients
    ~0.55 ms; the bare transports ~0.36 ms, since a fixed POST needs none of the client's
    redirect, cookie and auth layers.

    Idle connections expire after `whatsapp_http_keepalive_s`, before the server's own
    idle close: with httpx's default (5 s, the same as uvicorn's or Node's idle timeout),
    a send after a pause of about 5 s crossed the server's close on the wire, got no
    answer, and stayed `sending` of unknown fate until reconciliation (measured: 56 of
    64 sends after a 4.95 s pause).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        base = settings.whatsapp_api_base_url.rstrip("/")
        self.messages_url = httpx.URL(f"{base}/{settings.whatsapp_phone_number_id}/messages")
        self.contacts_url = httpx.URL(f"{base}/{settings.whatsapp_phone_number_id}/contacts")
        token = settings.whatsapp_access_token
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.timeout = httpx.Timeout(settings.whatsapp_http_timeout_s).as_dict()
        self._limits = httpx.Limits(
            max_connections=1, keepalive_expiry=settings.whatsapp_http_keepalive_s
        )
        # Two actors run at once per worker process (-t 2), each up to the concurrency.
        self._capacity = settings.dispatch_send_concurrency * 2
        self._idle: list[httpx.AsyncHTTPTransport] = []
        self._all: list[httpx.AsyncHTTPTransport] = []
        self._freed = asyncio.Condition()
        # Building an SSL context loads the CA bundle (~20 ms): once, shared by all.
        self._ssl = ssl.create_default_context()

    async def _post(self, url: httpx.URL, content: bytes) -> httpx.Response:
        async with self._freed:
            while not self._idle and len(self._all) >= self._capacity:
                await self._freed.wait()
            if self._idle:
                transport = self._idle.pop()
            else:
                transport = httpx.AsyncHTTPTransport(verify=self._ssl, limits=self._limits)
                self._all.append(transport)
        try:
            request = httpx.Request(
                "POST",
                url,
                headers=self.headers,
                content=content,
                extensions={"timeout": self.timeout},
            )
            response = await transport.handle_async_request(request)
            await response.aread()
            return response
        finally:
            async with self._freed:
                self._idle.append(transport)
                self._freed.notify()

    async def send(self, template: Template, message: Outbound) -> SendResult:
        payload = orjson.dumps(template_payload(template, message))
        status = 0
        for attempt in range(self.settings.whatsapp_http_retries + 1):
            try:
                response = await self._post(self.messages_url, payload)
            except httpx.ConnectError:
                status = 0  # nothing reached the provider: safe to try again
            except httpx.HTTPError as exc:
                # The request may have reached the provider: its fate is unknown.
                return SendResult(
                    message.message_id, error=f"provider unreachable: {exc!r}", unknown=True
                )
            else:
                status = response.status_code
                if status < 300:
                    ids = response.json().get("messages") or [{}]
                    return SendResult(message.message_id, provider_message_id=ids[0].get("id"))
                if status != 429 and status < 500:
                    return self._rejected(message, response)
            await asyncio.sleep(self._backoff(attempt))
        return SendResult(message.message_id, error=f"provider unavailable (HTTP {status})")

    def _backoff(self, attempt: int) -> float:
        base = self.settings.whatsapp_http_backoff_ms / 1000
        return base * 2**attempt * (0.5 + random.random() / 2)

    @staticmethod
    def _rejected(message: Outbound, response: httpx.Response) -> SendResult:
        try:
            error = response.json().get("error") or {}
        except ValueError:
            error = {}
        code = error.get("code")
        detail = (error.get("error_data") or {}).get("details") or error.get("message") or ""
        reason = f"{code or response.status_code}: {detail}".strip(": ")
        return SendResult(message.message_id, error=reason, undeliverable=code == UNDELIVERABLE)

    async def check_contacts(self, phones: list[str]) -> dict[str, bool]:
        """The contacts check endpoint: `valid` numbers can receive WhatsApp messages."""
        response = await self._post(
            self.contacts_url,
            orjson.dumps({"blocking": "wait", "contacts": phones, "force_check": True}),
        )
        if response.status_code >= 300:
            # Raising lets the actor's Retries try again later with backoff.
            raise ProviderError(f"contacts check failed (HTTP {response.status_code})")
        return {
            item["input"]: item.get("status") == "valid"
            for item in response.json().get("contacts", [])
        }

    async def aclose(self) -> None:
        for transport in self._all:
            await transport.aclose()


def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
        self._tasks: set[asyncio.Task[None]] = set()

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
                error=f"{UNDELIVERABLE}: Message undeliverable",
                undeliverable=True,
            )
        wamid = f"wamid.sim.{uuid.uuid4().hex}"
        task = asyncio.create_task(self._callbacks(message, wamid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return SendResult(message.message_id, provider_message_id=wamid)

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


def build_provider(settings: Settings) -> WhatsAppProvider:
    if settings.whatsapp_provider is ProviderKind.CLOUD_API:
        return CloudApiProvider(settings)
    return SimulatedProvider(settings)
