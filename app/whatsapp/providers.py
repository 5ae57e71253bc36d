"""WhatsApp providers behind one interface: the Cloud API over HTTP here, and a simulator
for demos (app/whatsapp/simulated.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import re
import ssl
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import orjson

from app.config import Settings
from app.models.enums import ParameterSource

_VARIABLE = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


class ProviderError(Exception):
    """The provider answered a request that is safe to repeat with an error."""


@dataclass(frozen=True)
class Template:
    name: str
    language: str
    body: str
    # Where each body parameter's value comes from, in order: (ParameterSource, its value:
    # an attribute's key or a text); empty: each from the attribute its placeholder names.
    parameters: tuple[tuple[str, str | None], ...] = ()

    def variables(self) -> list[str]:
        """Placeholder names in the order WhatsApp takes their values: `{{1}}`, `{{2}}` ...
        by number, named ones (`{{first_name}}`) in order of first appearance."""
        names = list(dict.fromkeys(match.group(1) for match in _VARIABLE.finditer(self.body)))
        if all(name.isdigit() for name in names):
            names.sort(key=int)
        return names


@dataclass(frozen=True)
class Outbound:
    message_id: int
    contact_id: int
    phone: str
    name: str | None
    attributes: dict[str, Any]
    # The sender number's Cloud API phone number id; empty: HERALD_WHATSAPP_PHONE_NUMBER_ID.
    sender: str = ""


@dataclass(frozen=True)
class SendResult:
    message_id: int
    provider_message_id: str | None = None
    error: str | None = None
    # What the provider answered, for its error class (app/whatsapp/errors.py): the Cloud
    # API's error code when it gave one, and the HTTP status (0: no answer).
    code: int | None = None
    http_status: int = 0
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
    """The Cloud API template message, its variables filled from the contact."""
    parameters = []
    sources = template.parameters
    for index, variable in enumerate(template.variables()):
        value = _value(sources[index] if index < len(sources) else None, variable, message)
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


def _value(source: tuple[str, str | None] | None, variable: str, message: Outbound) -> Any:
    """One body parameter's value for this contact; without a source, the attribute the
    placeholder names (for `{{name}}`, the contact's name when it has no such attribute)."""
    if source is None:
        value = message.attributes.get(variable)
        return message.name if value is None and variable == "name" else value
    kind, given = source
    if kind == ParameterSource.NAME:
        return message.name
    if kind == ParameterSource.PHONE:
        return message.phone
    if kind == ParameterSource.TEXT:
        return given
    return message.attributes.get(given or "")


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
        self.base = settings.whatsapp_api_base_url.rstrip("/")
        self.messages_url = self._messages_url(settings.whatsapp_phone_number_id)
        self._urls: dict[str, httpx.URL] = {"": self.messages_url}
        self.contacts_url = httpx.URL(f"{self.base}/{settings.whatsapp_phone_number_id}/contacts")
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

    def _messages_url(self, phone_number_id: str) -> httpx.URL:
        return httpx.URL(f"{self.base}/{phone_number_id}/messages")

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
        """Send once; only a refused connection or a 5xx is tried again here (quickly, a
        blip). Any other answer is returned, for dispatch to act on its error class."""
        payload = orjson.dumps(template_payload(template, message))
        url = self._urls.get(message.sender)
        if url is None:
            url = self._urls[message.sender] = self._messages_url(message.sender)
        last: httpx.Response | None = None
        for attempt in range(self.settings.whatsapp_http_retries + 1):
            try:
                response = await self._post(url, payload)
            except httpx.ConnectError:
                pass  # nothing reached the provider: safe to try again
            except httpx.HTTPError as exc:
                # The request may have reached the provider: its fate is unknown.
                return SendResult(
                    message.message_id, error=f"provider unreachable: {exc!r}", unknown=True
                )
            else:
                if response.status_code < 300:
                    ids = response.json().get("messages") or [{}]
                    return SendResult(message.message_id, provider_message_id=ids[0].get("id"))
                if response.status_code < 500:
                    return self._rejected(message, response)
                last = response
            await asyncio.sleep(self._backoff(attempt))
        if last is None:
            return SendResult(message.message_id, error="provider unreachable")
        return self._rejected(message, last)

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
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        detail = (error.get("error_data") or {}).get("details") or error.get("message") or ""
        if code is None and response.status_code >= 500:
            detail = "provider unavailable"
        reason = f"{code or f'HTTP {response.status_code}'}: {detail}".strip(": ")
        return SendResult(
            message.message_id, error=reason, code=code, http_status=response.status_code
        )

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
