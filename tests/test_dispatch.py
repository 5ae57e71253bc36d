"""Dispatch actors awaited directly (against real PostgreSQL, Redis and a fake Cloud API)."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import pytest_asyncio
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.campaigns import tasks as campaign_tasks
from app.campaigns.lock import RedisLock
from app.config import Provider, Settings
from app.contacts import tasks as contact_tasks
from app.db.engine import create_engine, create_sessionmaker
from app.db.redis_clients import worker_redis
from app.deps import Deps
from app.messages import tasks as message_tasks
from app.messages.repository import MessageRepository
from app.models import MessageStatus
from app.observability.metrics import dispatch_counts
from app.whatsapp.pacing import Pacer
from app.whatsapp.providers import CloudApiProvider, sign
from app.whatsapp.simulated import SimulatedProvider
from app.worker.jobs import MATERIALIZE, SEND_BATCH, SWEEP, Jobs
from tests.conftest import Server
from tests.fake_whatsapp import (
    PHONE_NUMBER_ID,
    WAIT_S,
    FakeWhatsApp,
    campaign_status,
    free_port,
    phone,
    seed_campaign,
    status_counts,
)

pytestmark = pytest.mark.asyncio


class RecordingJobs(Jobs):
    """Records what would be enqueued instead of sending it to the broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[object, ...], int | None]] = []

    def _send(self, actor_name: str, *args: object, delay_ms: int | None = None) -> None:
        self.sent.append((actor_name, args, delay_ms))

    def named(self, actor_name: str) -> list[tuple[object, ...]]:
        return [args for name, args, _ in self.sent if name == actor_name]


def dispatch_settings(settings: Settings, base_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "whatsapp_provider": Provider.CLOUD_API,
        "whatsapp_api_base_url": base_url,
        "whatsapp_phone_number_id": PHONE_NUMBER_ID,
        "whatsapp_http_backoff_ms": 5,
        "whatsapp_rate_per_second": 10_000,
        "db_pool_size": 2,
        "dispatch_chain_seconds": 0,  # one batch per call, so tests can step through
        **overrides,
    }
    return settings.model_copy(update=values)


@pytest_asyncio.fixture(name="make_deps")
async def make_deps_fixture(
    settings: Settings, fake: FakeWhatsApp, fake_server: tuple[FakeWhatsApp, str]
) -> AsyncIterator[Any]:
    """Build Deps with Settings overrides; everything is closed after the test."""
    opened: list[Deps] = []
    engines: list[AsyncEngine] = []

    def make(**overrides: Any) -> Deps:
        s = dispatch_settings(settings, fake_server[1], **overrides)
        engines.append(create_engine(s))
        deps = Deps(
            settings=s,
            sessionmaker=create_sessionmaker(engines[-1]),
            redis=worker_redis(s),
            provider=CloudApiProvider(s),
            jobs=RecordingJobs(),
        )
        opened.append(deps)
        return deps

    yield make
    for deps in opened:
        await deps.provider.aclose()
        await deps.redis.aclose()
        await engines.pop().dispose()


async def set_status(session: AsyncSession, campaign_id: int, status: str) -> None:
    await session.execute(
        text("UPDATE campaigns SET status = :s WHERE id = :c"), {"s": status, "c": campaign_id}
    )
    await session.commit()


async def drain(deps: Deps, campaign_id: int) -> int:
    """Run send_batch until a batch claims nothing, like one lane's chain would."""
    total = 0
    while claimed := await message_tasks.send_batch(deps, campaign_id):
        total += claimed
    return total


def jobs(deps: Deps) -> RecordingJobs:
    assert isinstance(deps.jobs, RecordingJobs)
    return deps.jobs


async def test_materialize_creates_one_pending_message_per_eligible_contact(
    session: AsyncSession, make_deps: Any
) -> None:
    # given 50 contacts: 5 opted out, 3 invalid, 10 in both targeted categories
    campaign_id = await seed_campaign(
        session, 50, opted_out=5, invalid=3, other_category_overlap=10
    )
    await set_status(session, campaign_id, "sending")
    deps = make_deps()

    # when
    first = await campaign_tasks.materialize(deps, campaign_id)
    second = await campaign_tasks.materialize(deps, campaign_id)

    # then
    assert (first, second) == (42, 0)
    assert await status_counts(session, campaign_id) == {"pending": 42}
    excluded = await session.execute(
        text(
            "SELECT count(*) FROM messages m JOIN contacts c ON c.id = m.contact_id "
            "WHERE c.opted_out_at IS NOT NULL OR c.whatsapp_status = 'invalid'"
        )
    )
    assert excluded.scalar_one() == 0
    assert len(jobs(deps).named(SEND_BATCH)) == 2 * deps.settings.dispatch_lanes


async def test_materialize_does_nothing_unless_sending(
    session: AsyncSession, make_deps: Any
) -> None:
    # given a draft campaign
    campaign_id = await seed_campaign(session, 10)
    deps = make_deps()

    # when
    created = await campaign_tasks.materialize(deps, campaign_id)

    # then
    assert created == 0
    assert await status_counts(session, campaign_id) == {}
    assert jobs(deps).sent == []


async def test_send_batch_sends_each_message_once_and_completes(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given
    fake.keep_payloads = True
    campaign_id = await seed_campaign(session, 30)
    await set_status(session, campaign_id, "sending")
    deps = make_deps(dispatch_batch_size=12)
    await campaign_tasks.materialize(deps, campaign_id)

    # when
    sent = await drain(deps, campaign_id)

    # then
    assert sent == 30
    assert sorted(fake.sends) == sorted(phone(i).lstrip("+") for i in range(30))
    assert set(fake.sends.values()) == {1}
    assert await status_counts(session, campaign_id) == {"sent": 30}
    assert await campaign_status(session, campaign_id) == "completed"
    ids = await session.execute(
        text("SELECT count(DISTINCT provider_message_id) FROM messages WHERE sent_at IS NOT NULL")
    )
    assert ids.scalar_one() == 30
    payload = fake.payloads[0]
    template: Any = payload["template"]
    assert template["name"] == "spring_sale"
    assert template["language"] == {"code": "fr"}
    parameter = template["components"][0]["parameters"][0]
    assert parameter["parameter_name"] == "first_name"
    assert parameter["text"] == "C" + str(int(str(payload["to"])[-7:]))
    assert str(payload["biz_opaque_callback_data"]).isdigit()
    assert (
        await message_tasks.send_batch(deps, campaign_id) == 0
    )  # a late duplicate changes nothing
    assert set(fake.sends.values()) == {1}


async def test_undeliverable_number_fails_and_marks_contact_invalid(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given
    campaign_id = await seed_campaign(session, 5)
    fake.undeliverable.add(phone(2).lstrip("+"))
    await set_status(session, campaign_id, "sending")
    deps = make_deps()
    await campaign_tasks.materialize(deps, campaign_id)

    # when
    await drain(deps, campaign_id)

    # then
    assert await status_counts(session, campaign_id) == {"sent": 4, "failed": 1}
    row = (
        await session.execute(
            text(
                "SELECT m.error, c.whatsapp_status FROM messages m "
                "JOIN contacts c ON c.id = m.contact_id WHERE m.status = 'failed'"
            )
        )
    ).one()
    assert row.error == "131026: Message undeliverable"
    assert row.whatsapp_status == "invalid"
    assert fake.attempts[phone(2).lstrip("+")] == 1  # never retried
    assert await dispatch_counts(deps.redis) == {
        (str(campaign_id), "sent"): 4,
        (str(campaign_id), "failed"): 1,
    }


async def test_429_and_5xx_are_retried_then_sent_once(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given
    campaign_id = await seed_campaign(session, 3)
    flaky = phone(1).lstrip("+")
    fake.transient[flaky] = [429, 503]
    await set_status(session, campaign_id, "sending")
    deps = make_deps()
    await campaign_tasks.materialize(deps, campaign_id)

    # when
    await drain(deps, campaign_id)

    # then
    assert fake.attempts[flaky] == 3
    assert fake.sends[flaky] == 1
    assert await status_counts(session, campaign_id) == {"sent": 3}


async def test_provider_down_defers_the_message_then_fails_it_once_its_deferrals_are_used(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given a number whose sends all meet a 503 without an error code
    campaign_id = await seed_campaign(session, 2)
    down = phone(0).lstrip("+")
    fake.transient[down] = [503] * 10
    await set_status(session, campaign_id, "sending")
    deps = make_deps(whatsapp_http_retries=2)
    await campaign_tasks.materialize(deps, campaign_id)
    jobs(deps).sent.clear()

    # when
    await drain(deps, campaign_id)

    # then three quick tries, then the message waits 5 s (its chain sleeps until then)
    assert fake.attempts[down] == 3
    assert fake.sends[down] == 0
    assert await status_counts(session, campaign_id) == {"sent": 1, "pending": 1}
    row = (
        await session.execute(
            text(
                "SELECT deferrals, attempts, error, extract(epoch FROM not_before - now()) AS wait"
                " FROM messages WHERE status = 'pending'"
            )
        )
    ).one()
    assert (row.deferrals, row.attempts, row.error) == (1, 0, None)
    assert 3.5 < row.wait <= 5
    [(name, args, delay)] = [job for job in jobs(deps).sent if job[2]]
    assert (name, args) == (SEND_BATCH, (campaign_id,))
    assert delay is not None
    assert 3_500 < delay <= 5_001

    # when it is due again after its last deferral (6 for a service error)
    await session.execute(
        text("UPDATE messages SET deferrals = 6, not_before = now() WHERE status = 'pending'")
    )
    await session.commit()
    await drain(deps, campaign_id)

    # then it fails with the reason, and the campaign completes
    assert fake.attempts[down] == 6
    failed = (
        await session.execute(
            text("SELECT error, error_code FROM messages WHERE status = 'failed'")
        )
    ).one()
    assert tuple(failed) == ("HTTP 503: provider unavailable", None)
    assert await campaign_status(session, campaign_id) == "completed"


class IdleClosingCloudApi:
    """A Cloud API stand-in whose idle close always meets the client's next request.

    A server closes a connection left idle for its keep-alive timeout; a request sent on
    it at that moment crosses the close on the wire and gets no answer. This one answers
    requests on a connection idle for less than `idle_close_s` and drops, unanswered, one
    that arrives later: the worst case of that race, every time.
    """

    def __init__(self, idle_close_s: float) -> None:
        self.idle_close_s = idle_close_s
        self.connections = 0
        self.answered = 0
        self.dropped = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        idle_since = time.monotonic()
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if time.monotonic() - idle_since >= self.idle_close_s:
                    self.dropped += 1
                    return
                length = re.search(rb"(?i)content-length: *(\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                body = orjson.dumps({"messages": [{"id": f"wamid.idle.{self.answered}"}]})
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
                self.answered += 1
                idle_since = time.monotonic()
        except asyncio.IncompleteReadError:
            return
        finally:
            writer.close()


async def test_a_batch_after_a_pause_is_not_lost_to_the_providers_idle_close(
    session: AsyncSession, make_deps: Any
) -> None:
    # given a provider that closes connections idle for 2.5 s, and workers that keep
    # theirs for 2 s: one batch of two sends, then a pause (a broker or Redis outage)
    stand_in = IdleClosingCloudApi(idle_close_s=2.5)
    server = await asyncio.start_server(stand_in.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v21.0"
    campaign_id = await seed_campaign(session, 4)
    await set_status(session, campaign_id, "sending")
    deps = make_deps(
        whatsapp_api_base_url=url,
        whatsapp_http_keepalive_s=2.0,
        dispatch_batch_size=2,
        dispatch_send_concurrency=1,
    )
    await campaign_tasks.materialize(deps, campaign_id)
    try:
        await message_tasks.send_batch(deps, campaign_id)
        await asyncio.sleep(3.0)

        # when the next batch goes out after the pause
        await drain(deps, campaign_id)
    finally:
        await deps.provider.aclose()
        server.close()

    # then every send was answered, none left of unknown fate: the back-to-back sends
    # shared a connection, and the first one after the pause opened a fresh one instead
    # of crossing the provider's close
    assert await status_counts(session, campaign_id) == {"sent": 4}
    assert (stand_in.answered, stand_in.dropped, stand_in.connections) == (4, 0, 2)


async def test_pause_stops_within_one_batch(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given one batch sent
    campaign_id = await seed_campaign(session, 20)
    await set_status(session, campaign_id, "sending")
    deps = make_deps(dispatch_batch_size=5)
    await campaign_tasks.materialize(deps, campaign_id)
    assert await message_tasks.send_batch(deps, campaign_id) == 5

    # when paused
    await set_status(session, campaign_id, "paused")
    claimed = await message_tasks.send_batch(deps, campaign_id)

    # then
    assert claimed == 0
    assert sum(fake.sends.values()) == 5
    assert await status_counts(session, campaign_id) == {"sent": 5, "pending": 15}
    assert await campaign_status(session, campaign_id) == "paused"


async def dead_worker_claim(session: AsyncSession, campaign_id: int) -> list[int]:
    """Claim every message as a worker that then died would have, a minute ago."""
    claimed = await MessageRepository(session).claim(campaign_id, 100, datetime.now(UTC))
    await session.execute(text("UPDATE messages SET updated_at = now() - interval '1 minute'"))
    await session.commit()
    return sorted(m.id for m in claimed)


async def test_without_webhooks_unknown_messages_fail_unknown_and_complete(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given a provider configured as posting no webhooks, and a worker that claimed 4
    # messages and died
    campaign_id = await seed_campaign(session, 4)
    await set_status(session, campaign_id, "sending")
    deps = make_deps(dispatch_sending_timeout_s=0.5, whatsapp_status_webhooks=False)
    await campaign_tasks.materialize(deps, campaign_id)
    await dead_worker_claim(session, campaign_id)
    token = jobs(deps).named(SWEEP)[-1][1]
    assert isinstance(token, str)

    # when
    await campaign_tasks.sweep(deps, campaign_id, token)

    # then nothing was sent again; all 4 are failed "unknown" and the campaign is done
    assert sum(fake.sends.values()) == 0
    assert await status_counts(session, campaign_id) == {"failed": 4}
    errors = await session.execute(text("SELECT DISTINCT error FROM messages"))
    assert errors.scalars().all() == ["unknown"]
    assert await campaign_status(session, campaign_id) == "completed"


async def test_unknown_messages_are_settled_by_webhooks_then_resent_at_most_once(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given a worker that claimed 4 messages and died; one of them had already been
    # re-sent once before, and a status webhook then arrived for another
    campaign_id = await seed_campaign(session, 4)
    await set_status(session, campaign_id, "sending")
    patient = make_deps(dispatch_sending_timeout_s=0.5, dispatch_reconcile_grace_s=600)
    await campaign_tasks.materialize(patient, campaign_id)
    confirmed, first, second, resent_before = await dead_worker_claim(session, campaign_id)
    await session.execute(
        text("UPDATE messages SET attempts = 2 WHERE id = :id"), {"id": resent_before}
    )
    await session.commit()
    await MessageRepository(session).apply_status(
        MessageStatus.SENT, "wamid.late", confirmed, datetime.now(UTC)
    )
    await session.commit()

    # when the sweeper runs within the grace period, then after it
    token = jobs(patient).named(SWEEP)[-1][1]
    assert isinstance(token, str)
    await campaign_tasks.sweep(patient, campaign_id, token)
    within_grace = await status_counts(session, campaign_id)
    deps = make_deps(dispatch_sending_timeout_s=0.5, dispatch_reconcile_grace_s=0.5)
    await campaign_tasks.sweep(deps, campaign_id, token)
    after_grace = await status_counts(session, campaign_id)
    await drain(deps, campaign_id)

    # then within the grace period nothing moved; after it the two unconfirmed first
    # attempts were re-sent once each, and the earlier re-send failed "unknown"
    assert within_grace == {"sent": 1, "sending": 3}
    assert after_grace == {"sent": 1, "pending": 2, "failed": 1}
    assert await status_counts(session, campaign_id) == {"sent": 3, "failed": 1}
    assert sum(fake.sends.values()) == 2
    assert set(fake.sends.values()) == {1}
    rows = await session.execute(text("SELECT id, attempts, error FROM messages ORDER BY id"))
    assert [tuple(r) for r in rows] == [
        (confirmed, 1, None),
        (first, 2, None),
        (second, 2, None),
        (resent_before, 2, "unknown"),
    ]
    assert await campaign_status(session, campaign_id) == "completed"
    # /metrics: the two re-sends as sent, the one given up on as failed
    assert await dispatch_counts(deps.redis) == {
        (str(campaign_id), "sent"): 2,
        (str(campaign_id), "failed"): 1,
    }


async def test_superseded_sweep_chain_stops(session: AsyncSession, make_deps: Any) -> None:
    # given a campaign whose sweeper chain was replaced
    campaign_id = await seed_campaign(session, 3)
    await set_status(session, campaign_id, "sending")
    deps = make_deps()
    await campaign_tasks.materialize(deps, campaign_id)
    await campaign_tasks.materialize(deps, campaign_id)
    old, new = (args[1] for args in jobs(deps).named(SWEEP))
    assert isinstance(old, str)
    jobs(deps).sent.clear()

    # when the old chain fires
    await campaign_tasks.sweep(deps, campaign_id, old)

    # then it does nothing and does not re-arm itself
    assert jobs(deps).sent == []
    assert (await deps.redis.get(campaign_tasks.sweep_key(campaign_id))).decode() == new


async def test_lock_is_released_only_by_its_owner(make_deps: Any) -> None:
    # given
    deps = make_deps()
    first = RedisLock(deps.redis, "campaign:lock:1", 5_000)
    second = RedisLock(deps.redis, "campaign:lock:1", 5_000)

    # when / then
    assert await first.acquire()
    assert not await second.acquire()
    assert not await second.release()
    assert (await deps.redis.get("campaign:lock:1")).decode() == first.token
    assert await first.release()
    assert await second.acquire()


async def test_pacer_grants_at_most_the_rate_per_second(make_deps: Any) -> None:
    # given
    deps = make_deps()
    pacer = Pacer(deps.redis, 5, 10, PHONE_NUMBER_ID)

    # when
    grants = [await pacer.take(4, "campaign:halt:1"), await pacer.take(4, "campaign:halt:1")]

    # then the second call got the remainder of the same second or a new second's share
    assert grants[0] == 4
    assert grants[1] in (1, 4)


async def test_verify_contacts_sets_whatsapp_status(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given
    await seed_campaign(session, 3)
    fake.undeliverable.add(phone(1).lstrip("+"))
    ids = list((await session.execute(text("SELECT id FROM contacts ORDER BY id"))).scalars())
    deps = make_deps()

    # when
    checked = await contact_tasks.verify_contacts(deps, ids)

    # then
    assert checked == 3
    rows = await session.execute(
        text(
            "SELECT whatsapp_status FROM contacts WHERE whatsapp_checked_at IS NOT NULL ORDER BY id"
        )
    )
    assert rows.scalars().all() == ["valid", "invalid", "valid"]


async def test_recover_rearms_sending_campaigns_once(session: AsyncSession, make_deps: Any) -> None:
    # given a sending campaign and a paused one holding a message stuck in `sending`
    sending = await seed_campaign(session, 2)
    await set_status(session, sending, "sending")
    paused = (
        await session.execute(
            text(
                "INSERT INTO campaigns (name, template_name, template_language, template_body, "
                "status) "
                "VALUES ('Old', 'old', 'en', '', 'paused') RETURNING id"
            )
        )
    ).scalar_one()
    await session.execute(
        text("INSERT INTO messages (campaign_id, contact_id, status) VALUES (:c, 1, 'sending')"),
        {"c": paused},
    )
    await session.commit()
    deps = make_deps()

    await session.execute(text("UPDATE campaigns SET started_at = now() - interval '1 minute'"))
    await session.commit()

    # when two worker processes boot
    await campaign_tasks.recover(deps)
    await campaign_tasks.recover(deps)

    # then
    assert jobs(deps).named(MATERIALIZE) == [(sending,)]
    assert [args[0] for args in jobs(deps).named(SWEEP)] == [paused]


async def test_simulated_provider_posts_status_callbacks_to_the_webhook(
    session: AsyncSession, make_deps: Any, server: Server
) -> None:
    # given the simulated provider pointed at the running app's webhook
    campaign_id = await seed_campaign(session, 10)
    await set_status(session, campaign_id, "sending")
    deps = make_deps()
    deps.provider = SimulatedProvider(
        deps.settings.model_copy(
            update={
                "simulated_latency_ms": 0,
                "simulated_failure_rate": 0,
                "simulated_reply_rate": 0,
                "whatsapp_webhook_url": f"{server.url}/webhooks/whatsapp",
            }
        )
    )
    await campaign_tasks.materialize(deps, campaign_id)

    # when
    await drain(deps, campaign_id)

    # then every message is delivered (or read) once the callbacks land
    deadline = asyncio.get_running_loop().time() + WAIT_S
    counts = await status_counts(session, campaign_id)
    while counts.get("sent") and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        counts = await status_counts(session, campaign_id)
    await deps.provider.aclose()
    assert set(counts) <= {"delivered", "read"}
    assert sum(counts.values()) == 10


@contextmanager
def flaky_webhook(failures: int) -> Iterator[tuple[str, list[tuple[bytes, str | None]]]]:
    """A webhook that answers 503 to its first `failures` posts; yields (url, posts seen)."""
    seen: list[tuple[bytes, str | None]] = []

    async def receive(request: Request) -> Response:
        seen.append((await request.body(), request.headers.get("x-hub-signature-256")))
        return Response(status_code=503 if len(seen) <= failures else 200)

    app = Starlette(routes=[Route("/hook", receive, methods=["POST"])])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/hook", seen
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def _callback_settings(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={
            "whatsapp_webhook_url": url,
            "whatsapp_app_secret": "s3cret",
            "simulated_callback_attempts": 4,
            "simulated_callback_backoff_ms": 1,
        }
    )


async def test_simulated_callback_refused_with_503_is_retried_until_accepted(
    settings: Settings,
) -> None:
    # given a webhook that is unavailable for its first two posts
    with flaky_webhook(failures=2) as (url, seen):
        provider = SimulatedProvider(_callback_settings(settings, url))
        try:
            # when
            delivered = await provider.post_callback(b'{"entry": []}')
        finally:
            await provider.aclose()

    # then the same signed body was posted three times, the third accepted
    assert delivered is True
    assert seen == [(b'{"entry": []}', sign("s3cret", b'{"entry": []}'))] * 3
    assert (provider.callbacks_posted, provider.callbacks_retried) == (1, 2)
    assert provider.callbacks_lost == 0


async def test_simulated_callback_given_up_on_is_counted_and_logged_at_warning(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # given a webhook address where nothing listens
    provider = SimulatedProvider(_callback_settings(settings, f"http://127.0.0.1:{free_port()}/"))
    try:
        # when
        with caplog.at_level(logging.WARNING, logger="app.whatsapp.simulated"):
            delivered = await provider.post_callback(b"{}")
    finally:
        await provider.aclose()

    # then every attempt was made, and the loss is visible
    assert delivered is False
    assert (provider.callbacks_posted, provider.callbacks_retried) == (0, 3)
    assert provider.callbacks_lost == 1
    [record] = [r for r in caplog.records if r.name == "app.whatsapp.simulated"]
    assert record.levelno == logging.WARNING
    assert "lost after 4 attempts" in record.getMessage()


async def test_recover_rearms_only_campaigns_without_a_live_chain(
    session: AsyncSession, make_deps: Any
) -> None:
    # given two sending campaigns: one with a live sweep chain, one whose chains were lost
    alive = await seed_campaign(session, 2)
    lost = (
        await session.execute(
            text(
                "INSERT INTO campaigns (name, template_name, template_language, template_body, "
                "status) VALUES ('Lost', 'lost', 'en', '', 'sending') RETURNING id"
            )
        )
    ).scalar_one()
    await session.commit()
    await set_status(session, alive, "sending")
    deps = make_deps()
    await campaign_tasks.materialize(deps, alive)
    jobs(deps).sent.clear()
    await session.execute(text("UPDATE campaigns SET started_at = now() - interval '1 minute'"))
    await session.commit()

    # when recovery runs in two later rounds
    first = await campaign_tasks.recover(deps)
    await deps.redis.delete(campaign_tasks.recovery_key())
    second = await campaign_tasks.recover(deps)

    # then only the lost campaign was re-armed, and only once; one just started is left
    # to its own materialize message
    assert (first, second) == (1, 0)
    assert jobs(deps).named(MATERIALIZE) == [(lost,)]
    await session.execute(
        text("UPDATE campaigns SET started_at = now() WHERE id = :c"), {"c": lost}
    )
    await session.commit()
    await deps.redis.delete(campaign_tasks.recovery_key(), campaign_tasks.sweep_key(lost))
    assert await campaign_tasks.recover(deps) == 0


async def test_a_send_that_timed_out_is_reconciled_not_failed(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp, caplog: pytest.LogCaptureFixture
) -> None:
    # given a provider slower than the HTTP timeout: it accepts, the worker never hears
    campaign_id = await seed_campaign(session, 1)
    await set_status(session, campaign_id, "sending")
    # (a timeout long enough for the request to reach the fake on a loaded machine)
    fake.latency_s = 1.5
    deps = make_deps(
        whatsapp_http_timeout_s=1.0, dispatch_sending_timeout_s=0.2, dispatch_reconcile_grace_s=0
    )
    await campaign_tasks.materialize(deps, campaign_id)

    # when the batch runs
    with caplog.at_level(logging.WARNING, logger="app.messages.tasks"):
        await message_tasks.send_batch(deps, campaign_id)

    # then the message is of unknown fate, not failed, until reconciliation decides; the
    # worker says so, since it holds the campaign open
    assert await status_counts(session, campaign_id) == {"sending": 1}
    assert "1 sends of unknown fate stay sending until reconciled" in caplog.text
    fake.latency_s = 0
    await asyncio.sleep(0.3)
    token = jobs(deps).named(SWEEP)[-1][1]
    assert isinstance(token, str)
    await campaign_tasks.sweep(deps, campaign_id, token)
    await drain(deps, campaign_id)
    assert await status_counts(session, campaign_id) == {"sent": 1}
    # /metrics counts the message once, as sent by its re-send, never as failed
    assert await dispatch_counts(deps.redis) == {(str(campaign_id), "sent"): 1}
    # the unheard one (recorded once the fake's slow answer ends) and its single re-send
    for _ in range(100):
        if sum(fake.attempts.values()) >= 2:
            break
        await asyncio.sleep(0.1)
    assert sum(fake.attempts.values()) == 2
