"""Cloud API error classes in dispatch, awaited directly against the fake Cloud API."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns import tasks as campaign_tasks
from app.campaigns.halts import halt_key
from app.messages import tasks as message_tasks
from app.observability.metrics import dispatch_counts, pause_counts
from app.whatsapp.pacing import Pacer
from tests.fake_whatsapp import (
    PHONE_NUMBER_ID,
    FakeWhatsApp,
    campaign_status,
    phone,
    seed_campaign,
    status_counts,
)
from tests.test_dispatch import (
    drain,
    make_deps_fixture,  # noqa: F401 (the `make_deps` fixture)
    set_status,
)

pytestmark = pytest.mark.asyncio


async def add_campaign(session: AsyncSession, template: str, status: str = "sending") -> int:
    """A campaign of `template` targeting the `targets` category of seed_campaign."""
    campaign_id = (
        await session.execute(
            text(
                "INSERT INTO campaigns (name, template_name, template_language, template_body,"
                " status) VALUES ('Other', :t, 'fr', 'Bonjour', :s) RETURNING id"
            ),
            {"t": template, "s": status},
        )
    ).scalar_one()
    await session.execute(
        text(
            "INSERT INTO campaign_categories SELECT :c, id FROM categories WHERE name = 'targets'"
        ),
        {"c": campaign_id},
    )
    await session.commit()
    return int(campaign_id)


async def test_pair_rate_limit_sends_the_message_again_after_6_s_once(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given a contact the provider answers 131056 once
    campaign_id = await seed_campaign(session, 3)
    busy = phone(1).lstrip("+")
    fake.errors[busy] = [131056]
    await set_status(session, campaign_id, "sending")
    deps = make_deps()
    await campaign_tasks.materialize(deps, campaign_id)

    # when
    await drain(deps, campaign_id)

    # then it waits about 6 s, counted as deferred, nothing failed
    assert await status_counts(session, campaign_id) == {"sent": 2, "pending": 1}
    wait = await session.execute(
        text("SELECT extract(epoch FROM not_before - now()) FROM messages WHERE status = 'pending'")
    )
    assert 5 < wait.scalar_one() <= 6
    assert await message_tasks.send_batch(deps, campaign_id) == 0  # not before its time
    assert await dispatch_counts(deps.redis) == {
        (str(campaign_id), "sent"): 2,
        (str(campaign_id), "deferred"): 1,
    }

    # when its time has come
    await session.execute(text("UPDATE messages SET not_before = now() WHERE status = 'pending'"))
    await session.commit()
    await drain(deps, campaign_id)

    # then it went out once more, and once only
    assert (fake.attempts[busy], fake.sends[busy]) == (2, 1)
    assert await status_counts(session, campaign_id) == {"sent": 3}
    assert await campaign_status(session, campaign_id) == "completed"


async def test_slow_down_puts_the_message_back_and_halves_the_shared_rate_until_it_recovers(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given a rate of 100/s that recovers in 1 s, and a provider answering 130429 once
    campaign_id = await seed_campaign(session, 5)
    fake.errors[phone(2).lstrip("+")] = [130429]
    await set_status(session, campaign_id, "sending")
    deps = make_deps(whatsapp_rate_per_second=100, whatsapp_rate_recovery_s=1.0)
    pacer = Pacer(deps.redis, 100, 1.0, PHONE_NUMBER_ID)
    await campaign_tasks.materialize(deps, campaign_id)

    # when
    await drain(deps, campaign_id)
    slowed = await pacer.current()

    # then every contact got exactly one accepted send, none failed, and the rate halved
    assert await status_counts(session, campaign_id) == {"sent": 5}
    assert set(fake.sends.values()) == {1}
    assert len(fake.sends) == 5
    assert 50 <= slowed < 100
    await asyncio.sleep(0.6)
    assert await pacer.current() == 100  # back to the full rate by itself
    assert await dispatch_counts(deps.redis) == {
        (str(campaign_id), "sent"): 5,
        (str(campaign_id), "rate_limited"): 1,
    }


async def test_a_paused_template_pauses_its_campaigns_and_fails_nothing(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp, caplog: pytest.LogCaptureFixture
) -> None:
    # given two sending campaigns of the template and one of another template
    campaign_id = await seed_campaign(session, 20)
    same = await add_campaign(session, "spring_sale")
    other = await add_campaign(session, "autumn_sale")
    await set_status(session, campaign_id, "sending")
    deps = make_deps(dispatch_batch_size=20, dispatch_send_concurrency=5)
    for campaign in (campaign_id, same, other):
        await campaign_tasks.materialize(deps, campaign)
    fake.templates["spring_sale"] = 132015

    # when a batch meets the paused template
    with caplog.at_level(logging.WARNING, logger="app.campaigns.halts"):
        await drain(deps, campaign_id)
        claimed_by_same = await message_tasks.send_batch(deps, same)

    # then its first wave went out, nothing after; both campaigns of the template are
    # paused with the reason, every message still pending; the other campaign sends on
    assert len(fake.answered(132015)) == 5
    assert await status_counts(session, campaign_id) == {"pending": 20}
    assert claimed_by_same == 0
    assert await status_counts(session, same) == {"pending": 20}
    reasons = await session.execute(
        text(
            "SELECT id, status, pause_code, pause_error_code, pause_message FROM campaigns"
            " ORDER BY id"
        )
    )
    rows = {row.id: row for row in reasons}
    await session.commit()
    for paused in (campaign_id, same):
        assert (rows[paused].status, rows[paused].pause_code) == ("paused", "template_paused")
        assert rows[paused].pause_error_code == 132015
        assert rows[paused].pause_message.startswith("Template is paused (132015). ")
        assert await deps.redis.exists(halt_key(paused))
    assert (rows[other].status, rows[other].pause_code) == ("sending", None)
    # the template is marked paused: nothing starts or resumes on it until approved again
    marked = await session.execute(text("SELECT name, status, reason FROM templates"))
    assert [tuple(row) for row in marked] == [
        ("spring_sale", "PAUSED", "Template is paused (132015)")
    ]
    await session.commit()
    await drain(deps, other)
    assert await status_counts(session, other) == {"sent": 20}
    assert await pause_counts(deps.redis) == {"template_paused": 2}
    logged = [r.getMessage() for r in caplog.records if r.name == "app.campaigns.halts"]
    assert logged == [
        f"campaign {paused} paused: TEMPLATE_PAUSED (Cloud API error 132015): "
        + rows[paused].pause_message
        for paused in (campaign_id, same)
    ]


async def test_an_expired_token_pauses_every_sending_campaign(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given two sending campaigns of different templates, and a draft
    campaign_id = await seed_campaign(session, 6)
    other = await add_campaign(session, "autumn_sale")
    draft = await add_campaign(session, "winter_sale", status="draft")
    await set_status(session, campaign_id, "sending")
    deps = make_deps()
    await campaign_tasks.materialize(deps, campaign_id)
    fake.errors[phone(0).lstrip("+")] = [190]

    # when
    await drain(deps, campaign_id)

    # then both sending campaigns are paused, the draft is left alone
    result = await session.execute(text("SELECT id, status, pause_code FROM campaigns"))
    statuses = {row.id: (row.status, row.pause_code) for row in result}
    await session.commit()
    assert statuses == {
        campaign_id: ("paused", "access_token_invalid"),
        other: ("paused", "access_token_invalid"),
        draft: ("draft", None),
    }
    counts = await status_counts(session, campaign_id)
    assert counts.get("failed", 0) == 0
    assert counts["pending"] == 6 - counts.get("sent", 0)
