"""The portfolio's messaging limit: exact under concurrent chains, moving with a controlled
clock, customer-service windows not counted, the tier reported by the Cloud API, and the
window rebuilt from PostgreSQL when Redis loses it (real PostgreSQL, Redis, fake Cloud API)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.campaigns import tasks as campaign_tasks
from app.config import ConfigError, MessagingTier, Settings, load_settings
from app.deps import Deps
from app.messages import tasks as message_tasks
from app.whatsapp.limit import REACH_KEY, WINDOW_S, MessagingLimiter
from app.worker.jobs import SEND_BATCH
from tests.conftest import GqlClient
from tests.fake_whatsapp import (
    FakeWhatsApp,
    campaign_status,
    capability_update,
    phone,
    seed_campaign,
    signed,
    status_counts,
)
from tests.test_dispatch import jobs, make_deps_fixture, set_status  # noqa: F401 (fixture)
from tests.test_webhooks import SECRET, URL, reply

pytestmark = pytest.mark.asyncio

LIMIT = """
query { messagingLimit { tier source used remaining windowResetsAt } }
"""
REACH = """
query ($id: ID!) {
  campaign(id: $id) { status reach { pending reachableNow estimatedFinishAt waitingUntil } }
}
"""


class Clock:
    """Dispatch's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def secrets(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "whatsapp_app_secret", SECRET)


async def post(http: httpx.AsyncClient, payload: dict[str, Any]) -> int:
    body, headers = signed(SECRET, payload)
    return (await http.post(URL, content=body, headers=headers)).status_code


def wrote_now(sender: str, i: int) -> dict[str, Any]:
    """An inbound message from `sender`, written just now."""
    payload = reply(sender, "Hello", None, f"wamid.in.{i}")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = str(int(time.time()))
    return payload


async def no_seed(since: float) -> list[tuple[str, int]]:
    return []


async def run_lanes(lanes: list[Deps], campaign_id: int) -> None:
    """Each lane runs its chain until a batch claims nothing or waits for the window."""

    async def lane(deps: Deps) -> None:
        while await message_tasks.send_batch(deps, campaign_id):
            pass

    await asyncio.gather(*(lane(deps) for deps in lanes))


async def sent_phones(session: AsyncSession, campaign_id: int) -> list[str]:
    rows = await session.execute(
        text(
            "SELECT c.phone FROM messages m JOIN contacts c ON c.id = m.contact_id "
            "WHERE m.campaign_id = :c AND m.status = 'sent'"
        ),
        {"c": campaign_id},
    )
    await session.commit()
    return list(rows.scalars())


async def test_the_window_moves_counts_a_recipient_once_and_takes_back_what_did_not_go(
    make_deps: Any,
) -> None:
    # given a limit of 10: 4 reached at t0, 6 at t0 + 12 h
    deps = make_deps()
    clock = Clock()
    limiter = MessagingLimiter(deps.redis, no_seed, clock)
    start = clock.now
    first = await limiter.reserve(10, [f"+1{i}" for i in range(4)])
    clock.advance(12 * 3600)
    second = await limiter.reserve(10, [f"+2{i}" for i in range(6)])

    # when two more come at t0 + 20 h, one of them already reached
    clock.advance(8 * 3600)
    third = await limiter.reserve(10, ["+10", "+30"])

    # then the one already reached goes (counted once), the new one waits for t0 + 24 h
    assert (first.flags, second.flags) == ([1] * 4, [1] * 6)
    assert third.flags == [0, -1]
    assert third.frees_at[0] == pytest.approx(start + WINDOW_S, abs=0.01)
    assert await deps.redis.zcard(REACH_KEY) == 10

    # when the window has moved past t0 (not a day boundary: the 6 of t0 + 12 h still count)
    clock.advance(4 * 3600 + 1)
    fourth = await limiter.reserve(10, [f"+3{i}" for i in range(6)])

    # then 3 slots freed (+11, +12, +13; +10 was reached again at t0 + 20 h)
    assert fourth.flags == [1, 1, 1, -1, -1, -1]
    assert fourth.frees_at[0] == pytest.approx(start + 12 * 3600 + WINDOW_S, abs=0.01)

    # when 2 of the 3 admitted were not sent: given back, and the slots are free again
    assert await limiter.settle(fourth, ["+30", "+31"]) == 2
    assert (await limiter.usage(10)).remaining == 2
    # and a reservation never gives back a recipient another one reached since
    again = await limiter.reserve(10, ["+32"])
    assert again.flags == [0]
    assert await limiter.settle(fourth, ["+32"]) == 0


async def test_sends_recorded_after_redis_lost_the_window_are_counted_again(
    make_deps: Any,
) -> None:
    # given a recipient admitted, then Redis emptied and the window seeded anew (from
    # PostgreSQL, which has not recorded that send yet)
    deps = make_deps()
    limiter = MessagingLimiter(deps.redis, no_seed)
    reservation = await limiter.reserve(10, ["+1", "+2"])
    await deps.redis.flushdb()
    await limiter.load_seed()

    # when the batch settles: +1 went out, +2 did not
    given_back = await limiter.settle(reservation, ["+2"], ["+1"])

    # then +1 counts in the new window, +2 does not
    assert given_back == 0
    assert await deps.redis.zrange(REACH_KEY, 0, -1) == [b"+1"]


async def test_limit_reached_exactly_by_concurrent_chains_then_the_rest_as_the_window_slides(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given a limit of 250, three times as many contacts, four chains sharing it
    campaign_id = await seed_campaign(session, 750)
    await set_status(session, campaign_id, "sending")
    clock = Clock()
    lanes = [
        dataclasses.replace(
            make_deps(whatsapp_messaging_limit=MessagingTier.TIER_250, dispatch_batch_size=40),
            clock=clock,
        )
        for _ in range(4)
    ]
    await campaign_tasks.materialize(lanes[0], campaign_id)

    # when
    await run_lanes(lanes, campaign_id)

    # then exactly the limit went out, each once, and the rest waits (the campaign sending)
    assert await status_counts(session, campaign_id) == {"sent": 250, "pending": 500}
    assert sum(fake.sends.values()) == 250
    assert set(fake.sends.values()) == {1}
    assert await lanes[0].redis.zcard(REACH_KEY) == 250
    assert await campaign_status(session, campaign_id) == "sending"
    # and each chain ended sleeping until the window frees its first slot, a day later
    last = [[d for n, _, d in jobs(deps).sent if n == SEND_BATCH][-1] for deps in lanes]
    assert all(d is not None and WINDOW_S * 1000 - 60_000 < d <= WINDOW_S * 1000 for d in last)

    # when the window slides past the first reaches
    clock.advance(WINDOW_S + 1)
    await run_lanes(lanes, campaign_id)

    # then exactly as many more went out
    assert await status_counts(session, campaign_id) == {"sent": 500, "pending": 250}
    assert sum(fake.sends.values()) == 500

    # when it slides once more, the campaign finishes: none lost, none sent twice
    clock.advance(WINDOW_S + 1)
    await run_lanes(lanes, campaign_id)
    assert await status_counts(session, campaign_id) == {"sent": 750}
    assert await campaign_status(session, campaign_id) == "completed"
    assert sorted(p.lstrip("+") for p in await sent_phones(session, campaign_id)) == sorted(
        fake.sends
    )
    assert set(fake.sends.values()) == {1}
    assert len(fake.sends) == 750


async def test_contacts_whose_customer_service_window_is_open_are_not_counted(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp, http: httpx.AsyncClient
) -> None:
    # given 30 contacts, 10 of whom wrote to the business (their window is open), and a
    # window with room for 5 more recipients
    campaign_id = await seed_campaign(session, 30)
    for i in range(10):
        assert await post(http, wrote_now(phone(i), i)) == 200
    deps = make_deps(whatsapp_messaging_limit=MessagingTier.TIER_250)
    limiter = MessagingLimiter(deps.redis, no_seed)
    await limiter.load_seed()
    await limiter.reserve(250, [f"+9{i:03d}" for i in range(245)])
    await set_status(session, campaign_id, "sending")
    await campaign_tasks.materialize(deps, campaign_id)

    # when
    while await message_tasks.send_batch(deps, campaign_id):
        pass

    # then the 10 went out without counting, and 5 others took the 5 slots
    sent = await sent_phones(session, campaign_id)
    assert len(sent) == 15
    assert {phone(i) for i in range(10)} <= set(sent)
    assert await deps.redis.zcard(REACH_KEY) == 250
    assert await status_counts(session, campaign_id) == {"sent": 15, "pending": 15}


async def test_business_capability_update_sets_the_limit_dispatch_follows(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp, gql: GqlClient, http: Any
) -> None:
    # given nothing reported (a limit no tier has is ignored): a new portfolio's 250 is assumed
    assert await post(http, capability_update(2**40)) == 200
    assert (await gql.ok(LIMIT))["messagingLimit"] == {
        "tier": 250,
        "source": "ASSUMED",
        "used": 0,
        "remaining": 250,
        "windowResetsAt": None,
    }
    campaign_id = await seed_campaign(session, 300)
    await set_status(session, campaign_id, "sending")
    deps = make_deps(dispatch_batch_size=100)
    await campaign_tasks.materialize(deps, campaign_id)

    # when the Cloud API reports 2,000 after 250 went out
    while await message_tasks.send_batch(deps, campaign_id):
        pass
    assert await status_counts(session, campaign_id) == {"sent": 250, "pending": 50}
    assert await post(http, capability_update(2000)) == 200

    # then the API shows it, and the campaign's 50 others go out under it
    limit = (await gql.ok(LIMIT))["messagingLimit"]
    assert (limit["tier"], limit["source"], limit["used"], limit["remaining"]) == (
        2000,
        "REPORTED",
        250,
        1750,
    )
    assert limit["windowResetsAt"] is not None
    await session.execute(text("UPDATE messages SET not_before = NULL"))
    await session.commit()
    while await message_tasks.send_batch(deps, campaign_id):
        pass
    assert await status_counts(session, campaign_id) == {"sent": 300}
    reach = (await gql.ok(REACH, {"id": str(campaign_id)}))["campaign"]["reach"]
    assert reach == {
        "pending": 0,
        "reachableNow": 0,
        "estimatedFinishAt": None,
        "waitingUntil": reach["waitingUntil"],
    }

    # and an unlimited tier is reported as such
    assert await post(http, capability_update(-1)) == 200
    assert (await gql.ok(LIMIT))["messagingLimit"]["tier"] is None


async def test_metrics_show_the_limit_and_what_its_window_has_left(
    make_deps: Any, http: httpx.AsyncClient
) -> None:
    # given 3 recipients reached under the assumed 250
    deps = make_deps()
    await MessagingLimiter(deps.redis, no_seed).reserve(250, ["+1", "+2", "+3"])

    # when
    body = (await http.get("/metrics")).text

    # then
    assert "herald_messaging_limit 250.0" in body
    assert "herald_messaging_limit_used 3.0" in body
    assert "herald_messaging_limit_remaining 247.0" in body


async def test_a_waiting_campaign_shows_what_it_can_reach_and_when_it_should_finish(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp, gql: GqlClient
) -> None:
    # given a campaign of 400 at the limit of 250
    campaign_id = await seed_campaign(session, 400)
    await set_status(session, campaign_id, "sending")
    deps = make_deps(whatsapp_messaging_limit=MessagingTier.TIER_250, dispatch_batch_size=100)
    await campaign_tasks.materialize(deps, campaign_id)
    while await message_tasks.send_batch(deps, campaign_id):
        pass

    # when
    campaign = (await gql.ok(REACH, {"id": str(campaign_id)}))["campaign"]

    # then it is still sending, can reach none now, and waits a day for its next slot
    reach = campaign["reach"]
    assert campaign["status"] == "SENDING"
    assert (reach["pending"], reach["reachableNow"]) == (150, 0)
    assert reach["waitingUntil"] is not None
    assert reach["estimatedFinishAt"] >= reach["waitingUntil"]


async def test_the_window_survives_redis_being_emptied(
    session: AsyncSession, make_deps: Any, fake: FakeWhatsApp
) -> None:
    # given 250 reached, then Redis loses everything
    campaign_id = await seed_campaign(session, 300)
    await set_status(session, campaign_id, "sending")
    deps = make_deps(whatsapp_messaging_limit=MessagingTier.TIER_250, dispatch_batch_size=100)
    await campaign_tasks.materialize(deps, campaign_id)
    while await message_tasks.send_batch(deps, campaign_id):
        pass
    await deps.redis.flushdb()
    await session.execute(text("UPDATE messages SET not_before = NULL"))
    await session.commit()

    # when the chains run again
    await message_tasks.send_batch(deps, campaign_id)

    # then the window was rebuilt from what PostgreSQL knows was sent: nothing more went out
    assert await status_counts(session, campaign_id) == {"sent": 250, "pending": 50}
    assert sum(fake.sends.values()) == 250
    assert await deps.redis.zcard(REACH_KEY) == 250


async def test_the_daily_quota_setting_is_refused_with_its_replacement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given
    monkeypatch.setenv("HERALD_WHATSAPP_DAILY_QUOTA", "100000")

    # when / then
    with pytest.raises(ConfigError, match="HERALD_WHATSAPP_MESSAGING_LIMIT"):
        load_settings()
    monkeypatch.delenv("HERALD_WHATSAPP_DAILY_QUOTA")
    monkeypatch.setenv("HERALD_WHATSAPP_MESSAGING_LIMIT", "1000")
    with pytest.raises(ConfigError, match="HERALD_WHATSAPP_MESSAGING_LIMIT"):
        load_settings()
    monkeypatch.setenv("HERALD_WHATSAPP_MESSAGING_LIMIT", "unlimited")
    assert load_settings().whatsapp_messaging_limit is not None
