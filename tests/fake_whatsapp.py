"""A local stand-in for the WhatsApp Cloud API, plus helpers to seed campaigns and run workers.

The fake counts sends per recipient (the at-most-once evidence) and plays Meta's errors on
demand: any error code in the send response, for chosen numbers, for a paused template or
for everyone during a burst, or after accepting a send in a signed `failed` status webhook
to Herald (as the Cloud API reports 131049 and the like), and bare HTTP 429 or 5xx. It
answers for any business phone number id, lists the business account's message templates
(a few per page with `paging` cursors), and builds the account-level webhooks Meta posts
(`quality_update`, `capability_update`), signed by `signed`.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import httpx
import orjson
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.config import Settings
from app.whatsapp.errors import ERRORS
from app.whatsapp.providers import sign

PHONE_NUMBER_ID = "1234567890"
BUSINESS_ACCOUNT_ID = "9876543210"
ACCESS_TOKEN = "test-token"
# The HTTP status the Cloud API answers an error code with (400 when not listed).
ERROR_STATUS = {
    0: 401,
    190: 401,
    10: 403,
    368: 403,
    131005: 403,
    131031: 403,
    132001: 404,
    4: 429,
    80007: 429,
    130429: 429,
    131000: 500,
    131016: 503,
    133004: 503,
}


class Request(NamedTuple):
    """One send request as the fake saw it: when (Unix time, as the workers' one-second
    rate windows), to whom, with which template, and the error code it was answered with
    (0: accepted, -1: a bare HTTP status)."""

    at: float
    to: str
    template: str
    code: int
    sender: str = PHONE_NUMBER_ID  # the business phone number id it was sent through


def error_body(code: int) -> dict[str, Any]:
    title = ERRORS[code].title if code in ERRORS else "Unknown error"
    return {
        "error": {
            "message": f"(#{code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": title},
            "fbtrace_id": "fake",
        }
    }


DRAMATIQ = [sys.executable, "-m", "dramatiq", "app.worker.process"]


@dataclass
class FakeWhatsApp:
    """Behaviour and observations of the fake Cloud API (shared with the server thread)."""

    undeliverable: set[str] = field(default_factory=set)  # wa ids answered with 131026
    # wa id -> bare HTTP statuses (no error code) to answer before accepting ([429, 503]).
    transient: dict[str, list[int]] = field(default_factory=dict)
    # wa id -> error codes to answer, in turn, before accepting (e.g. [131056]).
    errors: dict[str, list[int]] = field(default_factory=dict)
    # wa id -> error code posted in a `failed` status webhook after accepting each send.
    async_errors: dict[str, int] = field(default_factory=dict)
    # template name -> error code answered to every send of it (e.g. 132015: paused).
    templates: dict[str, int] = field(default_factory=dict)
    # (error code, until, monotonic): every send answered with the code until then.
    burst: tuple[int, float] | None = None
    # Where failed status webhooks go, signed with the app secret.
    webhook_url: str | None = None
    app_secret: str = ""
    latency_s: float = 0.0
    sends: Counter[str] = field(default_factory=Counter)  # accepted sends per wa id
    attempts: Counter[str] = field(default_factory=Counter)  # every request per wa id
    requests: list[Request] = field(default_factory=list)
    webhooks: Counter[int] = field(default_factory=Counter)  # posted and accepted, per code
    payloads: list[dict[str, object]] = field(default_factory=list)
    keep_payloads: bool = False
    # Called with the running total after each accepted send (from the server thread).
    on_send: Callable[[int], None] | None = None
    # The account's templates, as the Cloud API lists them, `listing_page` per page; the
    # query of every listing request.
    message_templates: list[dict[str, Any]] = field(default_factory=list)
    listing_page: int = 2
    listings: list[dict[str, str]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def reset(self) -> None:
        """Forget every behaviour and observation (the fake is shared by a test run)."""
        for values in (self.undeliverable, self.transient, self.errors, self.async_errors):
            values.clear()
        self.templates.clear()
        self.burst = None
        self.webhook_url = None
        self.app_secret = ""
        self.sends.clear()
        self.attempts.clear()
        self.requests.clear()
        self.webhooks.clear()
        self.payloads.clear()
        self.keep_payloads = False
        self.on_send = None
        self.latency_s = 0
        self.message_templates.clear()
        self.listing_page = 2
        self.listings.clear()

    def start_burst(self, code: int, seconds: float) -> None:
        """Answer every send with `code` for `seconds` from now."""
        self.burst = (code, time.monotonic() + seconds)

    def answered(self, code: int, template: str | None = None) -> list[Request]:
        """The requests answered with `code` (0: accepted), of `template` if given."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.code == code and (template is None or r.template == template)
            ]

    def _error_for(self, to: str, template: str) -> int:
        """The error code this send meets, 0 if none (called under the lock)."""
        if self.burst is not None and time.monotonic() < self.burst[1]:
            return self.burst[0]
        if template in self.templates:
            return self.templates[template]
        queued = self.errors.get(to)
        if queued:
            return queued.pop(0)
        return 131026 if to in self.undeliverable else 0

    def app(self) -> Starlette:
        async def messages(request: StarletteRequest) -> JSONResponse:
            body = await request.json()
            sender = str(request.path_params["number"])
            to = str(body["to"])
            template = str(body.get("template", {}).get("name", ""))
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            with self._lock:
                self.attempts[to] += 1
                pending = self.transient.get(to)
                if pending:
                    self.requests.append(Request(time.time(), to, template, -1, sender))
                    return JSONResponse({"error": {"message": "try later"}}, pending.pop(0))
                code = self._error_for(to, template)
                self.requests.append(Request(time.time(), to, template, code, sender))
                if code:
                    return JSONResponse(error_body(code), ERROR_STATUS.get(code, 400))
                self.sends[to] += 1
                if self.keep_payloads:
                    self.payloads.append(body)
                wamid = f"wamid.fake.{next(self._ids)}"
                if self.on_send is not None:
                    self.on_send(sum(self.sends.values()))
                failure = self.async_errors.get(to)
            if failure is not None:
                task = asyncio.create_task(
                    self._post_failed(wamid, to, body.get("biz_opaque_callback_data"), failure)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return JSONResponse(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": wamid}],
                }
            )

        async def contacts(request: StarletteRequest) -> JSONResponse:
            body = await request.json()
            return JSONResponse(
                {
                    "contacts": [
                        {
                            "input": phone,
                            "status": "invalid"
                            if phone.lstrip("+") in self.undeliverable
                            else "valid",
                        }
                        for phone in body["contacts"]
                    ]
                }
            )

        async def message_templates(request: StarletteRequest) -> JSONResponse:
            with self._lock:
                self.listings.append(dict(request.query_params))
                listed = list(self.message_templates)
            if request.headers.get("authorization") != f"Bearer {ACCESS_TOKEN}":
                return JSONResponse(error_body(190), 401)
            after = request.query_params.get("after")
            start = int(after.removeprefix("cursor-")) if after else 0
            end = start + self.listing_page
            paging: dict[str, Any] = {
                "cursors": {"before": f"cursor-{start}", "after": f"cursor-{end}"}
            }
            if end < len(listed):
                paging["next"] = f"{request.url.include_query_params(after=f'cursor-{end}')}"
            return JSONResponse({"data": listed[start:end], "paging": paging})

        return Starlette(
            routes=[
                Route("/v21.0/{number:str}/messages", messages, methods=["POST"]),
                Route(f"/v21.0/{PHONE_NUMBER_ID}/contacts", contacts, methods=["POST"]),
                Route(f"/v21.0/{BUSINESS_ACCOUNT_ID}/message_templates", message_templates),
            ]
        )

    async def _post_failed(self, wamid: str, to: str, callback: object, code: int) -> None:
        """The Cloud API's `failed` status for an accepted send, a moment later, signed."""
        await asyncio.sleep(0.1)
        error = error_body(code)["error"]
        event = {
            "id": wamid,
            "status": "failed",
            "timestamp": str(int(time.time())),
            "recipient_id": to,
            "biz_opaque_callback_data": callback,
            "errors": [
                {
                    "code": code,
                    "title": error["error_data"]["details"],
                    "message": error["message"],
                    "error_data": {"details": error["error_data"]["details"]},
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                }
            ],
        }
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE_NUMBER_ID},
            "statuses": [event],
        }
        payload = {
            "object": "whatsapp_business_account",
            "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
        }
        body = orjson.dumps(payload)
        assert self.webhook_url is not None, "set fake.webhook_url to post status webhooks"
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(self.app_secret, body),
        }
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(20):  # the Cloud API retries a webhook that got no 2xx
                try:
                    response = await client.post(self.webhook_url, content=body, headers=headers)
                except httpx.TransportError:
                    response = None
                if response is not None and response.status_code < 300:
                    with self._lock:
                        self.webhooks[code] += 1
                    return
                await asyncio.sleep(0.2)


def account_envelope(field: str, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "time": int(time.time()),
                "changes": [{"field": field, "value": value}],
            }
        ],
    }


def quality_update(display_number: str, event: str, **extra: Any) -> dict[str, Any]:
    """Meta's phone_number_quality_update for a business number (FLAGGED, UNFLAGGED...)."""
    value = {"display_phone_number": display_number, "event": event, **extra}
    return account_envelope("phone_number_quality_update", value)


def capability_update(limit: int) -> dict[str, Any]:
    """Meta's business_capability_update: the portfolio's messaging limit (-1: unlimited)."""
    value = {
        "max_daily_conversation_per_phone": limit,
        "max_daily_conversations_per_business": limit,
        "max_phone_numbers_per_business": 2,
        "max_phone_numbers_per_waba": 2,
    }
    return account_envelope("business_capability_update", value)


def signed(secret: str, payload: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A webhook body and the headers the Cloud API sends it with."""
    body = orjson.dumps(payload)
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_fake(fake: FakeWhatsApp) -> Iterator[str]:
    """Run the fake under uvicorn in a thread; yield its Cloud API base URL."""
    port = free_port()
    config = uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake WhatsApp server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v21.0"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


SPRING_SALE = "Bonjour {{first_name}}, -20%!"


def phone(i: int) -> str:
    return f"+3361{i:07d}"


async def seed_campaign(
    session: AsyncSession,
    contacts: int,
    *,
    opted_out: int = 0,
    invalid: int = 0,
    other_category_overlap: int = 0,
) -> int:
    """Contacts 0..n-1 in a targeted category (the first ones opted out, then invalid ones);
    `other_category_overlap` of them also in a second targeted category; the campaign sends
    the approved template spring_sale (fr), inserted with it if new. Returns the id."""
    await session.execute(
        text(
            """
            INSERT INTO contacts (phone, name, attributes, opted_out_at, whatsapp_status)
            SELECT '+3361' || lpad(i::text, 7, '0'), 'Contact ' || i,
                   jsonb_build_object('first_name', 'C' || i),
                   CASE WHEN i < :opted_out THEN now() END,
                   CASE WHEN i >= :opted_out AND i < :opted_out + :invalid
                        THEN 'invalid' ELSE 'unknown' END
            FROM generate_series(0, :n - 1) AS i
            """
        ),
        {"n": contacts, "opted_out": opted_out, "invalid": invalid},
    )
    await session.execute(
        text(
            """
            INSERT INTO templates (name, language, status, category, body, parameter_count,
                                   components)
            VALUES ('spring_sale', 'fr', 'APPROVED', 'MARKETING', :body, 1,
                    jsonb_build_array(jsonb_build_object('type', 'BODY',
                                                         'text', CAST(:body AS text))))
            ON CONFLICT (name, language) DO NOTHING
            """
        ),
        {"body": SPRING_SALE},
    )
    campaign_id = (
        await session.execute(
            text(
                """
                INSERT INTO campaigns (name, template_name, template_language, template_body)
                VALUES ('Spring', 'spring_sale', 'fr', :body)
                RETURNING id
                """
            ),
            {"body": SPRING_SALE},
        )
    ).scalar_one()
    for name in ("targets", "also"):
        category_id = (
            await session.execute(
                text("INSERT INTO categories (name) VALUES (:name) RETURNING id"), {"name": name}
            )
        ).scalar_one()
        await session.execute(
            text("INSERT INTO campaign_categories VALUES (:c, :k)"),
            {"c": campaign_id, "k": category_id},
        )
        limit = contacts if name == "targets" else other_category_overlap
        await session.execute(
            text(
                "INSERT INTO category_contacts (category_id, contact_id) "
                "SELECT :k, id FROM contacts ORDER BY id LIMIT :limit"
            ),
            {"k": category_id, "limit": limit},
        )
    await session.commit()
    return int(campaign_id)


async def status_counts(session: AsyncSession, campaign_id: int) -> dict[str, int]:
    rows = await session.execute(
        text("SELECT status, count(*) FROM messages WHERE campaign_id = :c GROUP BY status"),
        {"c": campaign_id},
    )
    session.expire_all()
    return {row[0]: row[1] for row in rows}


async def campaign_status(session: AsyncSession, campaign_id: int) -> str:
    result = await session.execute(
        text("SELECT status FROM campaigns WHERE id = :c"), {"c": campaign_id}
    )
    await session.commit()  # end the snapshot so the next read sees new commits
    return str(result.scalar_one())


def worker_env(settings: Settings, base_url: str, **extra: object) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(
        HERALD_DATABASE_URL=str(settings.database_url),
        HERALD_REDIS_URL=str(settings.redis_url),
        HERALD_WHATSAPP_PROVIDER="cloud_api",
        HERALD_WHATSAPP_API_BASE_URL=base_url,
        HERALD_WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        HERALD_WHATSAPP_BUSINESS_ACCOUNT_ID=BUSINESS_ACCOUNT_ID,
        HERALD_WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN,
        HERALD_WHATSAPP_HTTP_BACKOFF_MS="10",
        HERALD_DB_POOL_SIZE="4",
        # Counted, not limiting (a test about the limit sets its own tier).
        HERALD_WHATSAPP_MESSAGING_LIMIT="100000",
    )
    env.update({f"HERALD_{k.upper()}": str(v) for k, v in extra.items()})
    return env


# How long a worker test waits for anything. A wait, not a speed check: worker processes
# take tens of seconds just to boot when other processes hold both cores.
WAIT_S = 180.0


class Worker:
    """`python -m dramatiq app.worker.process -p N -t 2` as a real process group."""

    def __init__(self, env: dict[str, str], log: Path, processes: int = 2) -> None:
        self.log_path = log
        self.processes = processes
        self.log: IO[bytes] = log.open("ab")
        self._log_start = self.log.seek(0, os.SEEK_END)  # workers of one test share a log
        self.proc = subprocess.Popen(
            [*DRAMATIQ, "-p", str(processes), "-t", "2"],
            cwd=log.parent,  # not the checkout, whose `.env` may name a developer's services
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        """What this worker has logged so far."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    async def wait_until(
        self,
        check: Callable[[], Awaitable[bool]],
        what: str,
        state: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Poll `check` until true; fail with `state` and the end of the log if the worker
        exits or WAIT_S pass first."""
        deadline = time.monotonic() + WAIT_S
        while not await check():
            exited = self.proc.poll() is not None
            if exited or time.monotonic() > deadline:
                why = "the worker exited" if exited else f"not within {WAIT_S:.0f} s"
                seen = f" ({await state()})" if state is not None else ""
                tail = (await asyncio.to_thread(self.output))[-4000:]
                pytest.fail(f"waiting for {what}: {why}{seen}; worker log:\n{tail}")
            await asyncio.sleep(0.1)

    async def ready(self) -> None:
        """Wait until every process consumes, so that later waits are about dispatch."""

        async def booted() -> bool:
            output = await asyncio.to_thread(self.output)
            return output.count("Worker process is ready for action") >= self.processes

        await self.wait_until(booted, "the worker processes to boot")

    async def completed(self, session: AsyncSession, campaign_id: int) -> None:
        """Wait until the campaign is COMPLETED."""

        async def done() -> bool:
            return await campaign_status(session, campaign_id) == "completed"

        async def messages() -> dict[str, int]:
            return await status_counts(session, campaign_id)

        await self.wait_until(done, f"campaign {campaign_id} to complete", messages)

    async def exited(self) -> None:
        """Wait until the main process has exited (after a child was killed, it stops all)."""
        deadline = time.monotonic() + WAIT_S
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"the worker did not exit within {WAIT_S:.0f} s"
            await asyncio.sleep(0.1)

    def children(self) -> list[int]:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def kill_busiest_child(self) -> int:
        """SIGKILL the worker process that used the most CPU: the one mid-batch."""

        def cpu(pid: int) -> int:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime

        victim = max(self.children(), key=cpu)
        os.kill(victim, signal.SIGKILL)
        return victim

    def stop(self) -> None:
        if self.proc.poll() is None:
            # Only the main process: it forwards SIGTERM once; a second SIGTERM makes a
            # worker process exit abruptly instead of finishing its current message.
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
