"""Statistics counters: exact after every kind of change, verified and repaired by the CLI."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from app.campaigns import tasks as campaign_tasks
from app.campaigns.service import CampaignDispatchService
from app.config import Settings
from app.deps import Deps
from app.messages.repository import MessageRepository
from app.models import MessageStatus
from app.stats.repository import Drift, StatsRepository
from app.stats.service import find_drift
from app.whatsapp.providers import sign
from tests.conftest import GqlClient
from tests.fake_whatsapp import (
    FakeWhatsApp,
    phone,
    seed_campaign,
)
from tests.test_cli import herald
from tests.test_dispatch import (
    drain,
    make_deps_fixture,  # noqa: F401 (the `make_deps` fixture)
    set_status,
)

pytestmark = pytest.mark.asyncio

SECRET = "app-secret"

STATS = """
query($id: ID!) {
  campaign(id: $id) { stats { total sent delivered read failed interactionCount } }
  messageStats { total pending sending sent delivered read failed interactionCount }
  dashboard { contactCount optedOutContactCount messageStats { total interactionCount } }
}
"""
DELETE_CONTACT = "mutation($id: ID!) { deleteContact(id: $id) { __typename } }"


@pytest.fixture(autouse=True)
def secrets(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "whatsapp_app_secret", SECRET)


@pytest_asyncio.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


async def exact(session: AsyncSession) -> dict[str, Any]:
    """The figures counted the slow way: per campaign and status, interactions, contacts."""
    counts: dict[int, dict[str, int]] = {}
    for campaign_id, status, n in await session.execute(
        text("SELECT campaign_id, status, count(*) FROM messages GROUP BY 1, 2")
    ):
        counts.setdefault(campaign_id, {})[status] = n
    for campaign_id, n in await session.execute(
        text(
            "SELECT m.campaign_id, count(*) FROM interactions AS i"
            " JOIN messages AS m ON m.id = i.message_id GROUP BY 1"
        )
    ):
        counts.setdefault(campaign_id, {})["interactions"] = n
    contacts = await session.execute(text("SELECT count(*), count(opted_out_at) FROM contacts"))
    result = {"campaigns": counts, "contacts": tuple(contacts.one())}
    await session.commit()
    return result


async def counted(session: AsyncSession) -> dict[str, Any]:
    """The same figures as the counters say them (zeros left out, as count(*) does)."""
    ids = list((await session.execute(text("SELECT id FROM campaigns"))).scalars())
    counts: dict[int, dict[str, int]] = {}
    for row in await StatsRepository(session).by_campaign_ids(ids):
        figures = {k: v for k, v in row._mapping.items() if k != "campaign_id" and v}
        if figures:
            counts[row.campaign_id] = figures
    contacts = await session.execute(
        text("SELECT coalesce(sum(contacts), 0), coalesce(sum(opted_out), 0) FROM contact_counters")
    )
    result = {"campaigns": counts, "contacts": tuple(int(v) for v in contacts.one())}
    await session.commit()
    return result


async def post_webhook(http: httpx.AsyncClient, value: dict[str, Any]) -> int:
    body = orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
        }
    )
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(SECRET, body)}
    return (await http.post("/webhooks/whatsapp", content=body, headers=headers)).status_code


def status_event(wamid: str, status: str) -> dict[str, Any]:
    return {"statuses": [{"id": wamid, "status": status, "timestamp": "1764000000"}]}


def reply_event(sender: str, body: str, event_id: str) -> dict[str, Any]:
    message = {
        "from": sender.lstrip("+"),
        "id": event_id,
        "timestamp": "1764000000",
        "type": "text",
        "text": {"body": body},
    }
    return {"messages": [message]}


async def wamids(session: AsyncSession, campaign_id: int) -> list[str]:
    rows = await session.execute(
        text(
            "SELECT provider_message_id FROM messages"
            " WHERE campaign_id = :c AND provider_message_id IS NOT NULL ORDER BY id"
        ),
        {"c": campaign_id},
    )
    result = list(rows.scalars())
    await session.commit()
    return result


async def test_counters_follow_every_dispatch_step(
    session: AsyncSession, engine: AsyncEngine, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given a sending campaign of 12 contacts: one opted out, one number not on WhatsApp
    campaign_id = await seed_campaign(session, 12, opted_out=1)
    fake.undeliverable.add(phone(5).lstrip("+"))
    await set_status(session, campaign_id, "sending")
    deps = make_deps(dispatch_batch_size=4)
    steps: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def step() -> dict[str, int]:
        steps.append((await counted(session), await exact(session)))
        return dict(steps[-1][0]["campaigns"].get(campaign_id, {}))

    # when it is materialized and sent
    await campaign_tasks.materialize(deps, campaign_id)
    materialized = await step()
    await drain(deps, campaign_id)
    sent = await step()
    # status webhooks arrive (delivered, read, a late failure)
    repository = MessageRepository(session)
    ids, now = await wamids(session, campaign_id), datetime.now(UTC)
    for wamid in ids[:6]:
        await repository.apply_status(MessageStatus.DELIVERED, wamid, None, now)
    for wamid in ids[:3]:
        await repository.apply_status(MessageStatus.READ, wamid, None, now)
    await repository.apply_status(MessageStatus.FAILED, ids[9], None, now, error="131047")
    await session.commit()
    statuses = await step()
    # the failures are retried (the undeliverable one stays failed), then the rest cancelled
    await CampaignDispatchService(session).retry_failed(campaign_id, False)
    await session.commit()
    retried = await step()
    await CampaignDispatchService(session).cancel(campaign_id)
    await session.commit()
    cancelled = await step()

    # then each step moved the counters exactly as the rows moved
    assert materialized == {"pending": 11}
    assert sent == {"sent": 10, "failed": 1}
    assert statuses == {"sent": 3, "delivered": 3, "read": 3, "failed": 2}
    assert retried == {"sent": 3, "delivered": 3, "read": 3, "failed": 1, "pending": 1}
    assert cancelled == {"sent": 3, "delivered": 3, "read": 3, "failed": 2}
    assert [c for c, _ in steps] == [e for _, e in steps]
    assert await find_drift(engine) == []


async def test_counters_follow_interactions_opt_outs_and_deletions(
    session: AsyncSession, engine: AsyncEngine, http: httpx.AsyncClient, gql: GqlClient
) -> None:
    # given two campaigns that both messaged contacts 0..5, all `sent`
    first = await seed_campaign(session, 6)
    second = (
        await session.execute(
            text(
                "INSERT INTO campaigns (name, template_name, template_language, template_body,"
                " status) VALUES ('Again', 't', 'fr', 'b', 'completed') RETURNING id"
            )
        )
    ).scalar_one()
    for campaign_id in (first, second):  # the second campaign's messages are the latest
        await session.execute(
            text(
                "INSERT INTO messages (campaign_id, contact_id, status, provider_message_id)"
                " SELECT CAST(:c AS bigint), id, 'sent', 'wamid.' || :c || '.' || id"
                " FROM contacts ORDER BY id"
            ),
            {"c": campaign_id},
        )
    await session.commit()

    # when replies, a STOP and statuses arrive, a contact is deleted, then a whole campaign
    codes = [
        await post_webhook(http, reply_event(phone(0), "Thanks", "in.1")),
        await post_webhook(http, reply_event(phone(0), "Thanks", "in.1")),  # redelivered
        await post_webhook(http, reply_event(phone(1), "STOP", "in.2")),
        await post_webhook(http, status_event(f"wamid.{first}.4", "read")),
        await post_webhook(http, status_event(f"wamid.{second}.4", "delivered")),
    ]
    after_webhooks = await counted(session)
    deleted = await gql.ok(DELETE_CONTACT, {"id": "3"})
    after_contact = await counted(session)
    data = await gql.ok(STATS, {"id": str(second)})
    await session.execute(text("DELETE FROM campaigns WHERE id = :c"), {"c": first})
    await session.commit()
    after_campaign = await counted(session)

    # then
    assert codes == [200] * 5
    assert deleted == {"deleteContact": {"__typename": "DeleteContactSuccess"}}
    # the replies went to the latest message to each number: the second campaign's
    assert after_webhooks == {
        "campaigns": {
            first: {"sent": 5, "read": 1},
            second: {"sent": 5, "delivered": 1, "interactions": 2},
        },
        "contacts": (6, 1),
    }
    assert after_contact == {
        "campaigns": {
            first: {"sent": 4, "read": 1},
            second: {"sent": 4, "delivered": 1, "interactions": 2},
        },
        "contacts": (5, 1),
    }
    assert data["campaign"]["stats"] == {
        "total": 5,
        "sent": 4,
        "delivered": 1,
        "read": 0,
        "failed": 0,
        "interactionCount": 2,
    }
    assert data["messageStats"] == {
        "total": 10,
        "pending": 0,
        "sending": 0,
        "sent": 8,
        "delivered": 1,
        "read": 1,
        "failed": 0,
        "interactionCount": 2,
    }
    assert data["dashboard"] == {
        "contactCount": 5,
        "optedOutContactCount": 1,
        "messageStats": {"total": 10, "interactionCount": 2},
    }
    assert after_campaign == {
        "campaigns": {second: {"sent": 4, "delivered": 1, "interactions": 2}},
        "contacts": (5, 1),
    }
    remaining = await session.execute(
        text("SELECT count(*) FROM campaign_counters WHERE campaign_id = :c"), {"c": first}
    )
    assert remaining.scalar_one() == 0
    assert await find_drift(engine) == []


async def test_stats_verify_reports_drift_and_repair_corrects_it(
    session: AsyncSession, engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    # given counters that missed writes made with triggers off (as a raw restore would)
    campaign_id = await seed_campaign(session, 4)
    await session.execute(
        text(
            "INSERT INTO messages (campaign_id, contact_id, status)"
            " SELECT :c, id, 'sent' FROM contacts"
        ),
        {"c": campaign_id},
    )
    await session.commit()
    await session.execute(text("SET session_replication_role = replica"))
    await session.execute(text("UPDATE messages SET status = 'read' WHERE contact_id <= 2"))
    await session.execute(text("UPDATE contacts SET opted_out_at = now() WHERE id = 1"))
    await session.execute(text("SET session_replication_role = origin"))
    await session.commit()

    # when
    before = await herald("stats", "verify", cwd=tmp_path, HERALD_DATABASE_URL=database_url)
    repaired = await herald(
        "stats", "verify", "--repair", cwd=tmp_path, HERALD_DATABASE_URL=database_url
    )
    after = await herald("stats", "verify", cwd=tmp_path, HERALD_DATABASE_URL=database_url)

    # then
    assert before.code == 1, before.stderr
    assert before.stdout.splitlines() == [
        f"drift: campaign {campaign_id} sent: counter 4, count(*) 2 (-2)",
        f"drift: campaign {campaign_id} read: counter 0, count(*) 2 (+2)",
        "drift: totals sent: counter 4, count(*) 2 (-2)",
        "drift: totals read: counter 0, count(*) 2 (+2)",
        "drift: contacts opted_out: counter 0, count(*) 1 (+1)",
        "herald: 5 counters drift; run with --repair to correct them",
    ]
    assert repaired.code == 0, repaired.stderr
    assert repaired.stdout.splitlines()[-1] == "herald: repaired 5 counters; they are exact now"
    assert (after.code, after.stdout) == (0, "herald: statistics counters are exact\n")
    assert await counted(session) == await exact(session)


async def test_drift_check_ignores_concurrent_writers(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    """One snapshot: a write committed mid-check is either wholly seen or wholly not."""
    # given
    campaign_id = await seed_campaign(session, 200)
    await session.execute(
        text("INSERT INTO messages (campaign_id, contact_id) SELECT :c, id FROM contacts"),
        {"c": campaign_id},
    )
    await session.commit()
    stop = asyncio.Event()

    async def writer() -> int:
        writes = 0
        async with engine.connect() as connection:
            while not stop.is_set():
                await connection.execute(
                    text(
                        "UPDATE messages SET status = CASE status WHEN 'pending' THEN 'sent'"
                        " ELSE 'pending' END WHERE id = (SELECT id FROM messages"
                        " ORDER BY random() LIMIT 1)"
                    )
                )
                await connection.commit()
                writes += 1
        return writes

    # when
    running = asyncio.create_task(writer())
    checks: list[list[Drift]] = []
    for _ in range(10):
        checks.append(await find_drift(engine))
    stop.set()
    writes = await running

    # then
    assert writes > 0
    assert checks == [[]] * 10


async def test_concurrent_dispatch_webhooks_and_deletions_leave_counters_exact(
    session: AsyncSession,
    engine: AsyncEngine,
    make_deps: Any,
    http: httpx.AsyncClient,
    gql: GqlClient,
) -> None:
    # given two sending campaigns over the same 240 contacts, and a finished third one
    first = await seed_campaign(session, 240)
    second, third = (
        await session.execute(
            text(
                "INSERT INTO campaigns (name, template_name, template_language, template_body,"
                " status) VALUES ('B', 't', 'fr', 'b', 'sending'), ('C', 't', 'fr', 'b',"
                " 'completed') RETURNING id"
            )
        )
    ).scalars()
    await session.execute(
        text(
            "INSERT INTO campaign_categories SELECT :c, category_id FROM campaign_categories"
            " WHERE campaign_id = :f"
        ),
        {"c": second, "f": first},
    )
    await session.execute(
        text(
            "INSERT INTO messages (campaign_id, contact_id, status, provider_message_id)"
            " SELECT :c, id, 'delivered', 'wamid.old.' || id FROM contacts"
        ),
        {"c": third},
    )
    await session.execute(
        text(
            "INSERT INTO interactions (message_id, kind) SELECT id, 'click' FROM messages"
            " WHERE campaign_id = :c AND id % 3 = 0"
        ),
        {"c": third},
    )
    await session.commit()
    await set_status(session, first, "sending")
    deps = [make_deps(dispatch_batch_size=20) for _ in range(2)]
    for campaign_id in (first, second):
        await campaign_tasks.materialize(deps[0], campaign_id)
    rng = random.Random(7)
    sending = asyncio.Event()
    events = itertools.count()

    async def lane(d: Deps, campaign_id: int) -> None:
        await drain(d, campaign_id)

    async def webhooks() -> int:
        posted = 0
        while not sending.is_set() or posted < 40:
            ids = await wamids(session, rng.choice((first, second)))
            if not ids:
                await asyncio.sleep(0.01)
                continue
            choice = rng.random()
            if choice < 0.5:
                status = rng.choice(("delivered", "read", "failed"))
                value = status_event(rng.choice(ids), status)
            else:
                body = "STOP" if choice > 0.9 else "Hello"
                value = reply_event(phone(rng.randrange(240)), body, f"in.{next(events)}")
            assert await post_webhook(http, value) == 200
            posted += 1
        return posted

    async def deletions() -> int:
        deleted = 0
        for contact_id in rng.sample(range(1, 241), 25):
            result = await gql.ok(DELETE_CONTACT, {"id": str(contact_id)})
            assert result["deleteContact"]["__typename"] == "DeleteContactSuccess"
            deleted += 1
            if deleted == 10:
                async with engine.begin() as connection:
                    await connection.execute(
                        text("DELETE FROM campaigns WHERE id = :c"), {"c": third}
                    )
        return deleted

    # when workers send both campaigns while webhooks flow and contacts and a campaign go
    async def dispatch() -> None:
        await asyncio.gather(*(lane(d, c) for d in deps for c in (first, second)))
        sending.set()

    _, posted, deleted = await asyncio.gather(dispatch(), webhooks(), deletions())

    # then the counters are exactly count(*), and verify finds nothing to repair
    assert posted >= 40
    assert deleted == 25
    assert await find_drift(engine) == []
    figures = await counted(session)
    assert figures == await exact(session)
    assert figures["contacts"][0] == 215
    assert third not in figures["campaigns"]


async def test_totals_follow_campaigns_categories_and_truncation(
    session: AsyncSession, engine: AsyncEngine
) -> None:
    # given campaigns and categories created, moved and deleted by plain SQL
    campaign_id = await seed_campaign(session, 3)
    await session.execute(
        text(
            "INSERT INTO campaigns (name, template_name, template_language, template_body,"
            " status) SELECT 'C' || i, 't', 'fr', 'b', 'completed' FROM generate_series(1, 4) i"
        )
    )
    await session.execute(text("INSERT INTO categories (name) VALUES ('x'), ('y'), ('z')"))
    await session.execute(text("DELETE FROM categories WHERE name = 'y'"))
    await session.execute(
        text("UPDATE campaigns SET status = 'cancelled' WHERE name IN ('C1', 'C2')")
    )
    await session.execute(text("DELETE FROM campaigns WHERE name = 'C3'"))
    await set_status(session, campaign_id, "sending")
    await session.execute(
        text("INSERT INTO messages (campaign_id, contact_id) SELECT :c, id FROM contacts"),
        {"c": campaign_id},
    )
    await session.commit()
    exact_then = await find_drift(engine)
    figures = await StatsRepository(session).dashboard()
    categories = (await session.execute(text("SELECT count(*) FROM categories"))).scalar_one()
    await session.commit()

    # when everything is truncated
    await session.execute(text("TRUNCATE campaigns, categories CASCADE"))
    await session.commit()
    emptied = await StatsRepository(session).dashboard()
    await session.commit()

    # then
    assert exact_then == []
    assert figures["categories"] == categories
    assert figures["campaigns"] == {
        "draft": 0,
        "scheduled": 0,
        "sending": 1,
        "paused": 0,
        "completed": 1,
        "cancelled": 2,
        "failed": 0,
    }
    assert figures["messages"]["pending"] == 3
    assert emptied["categories"] == 0
    assert set(emptied["campaigns"].values()) == {0}
    assert set(emptied["messages"].values()) == {0}
    assert await find_drift(engine) == []
