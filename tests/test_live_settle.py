"""A campaign's progress stream ends once its late delivery and read statuses have settled:
real workers on the fake Cloud API, signed status webhooks posted after completion."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from tests.conftest import GqlClient, StartWorker, serve
from tests.fake_whatsapp import seed_campaign, signed
from tests.ws_client import GqlSocket, gql_socket

pytestmark = pytest.mark.asyncio

PROGRESS = """
subscription Progress($id: ID!) {
  campaignProgress(id: $id) { status settled stats { sent delivered read } }
}
"""
START = "mutation Start($id: ID!) { startCampaign(id: $id) { __typename } }"
SECRET = "app-secret"
WAIT = 60.0


def statuses(events: list[tuple[str, int, str]]) -> dict[str, Any]:
    """A Cloud API status delivery: (wamid, Herald's message id, status) per event."""
    now = str(int(time.time()))
    value = {
        "messaging_product": "whatsapp",
        "statuses": [
            {"id": wamid, "status": name, "timestamp": now, "biz_opaque_callback_data": str(key)}
            for wamid, key, name in events
        ],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }


class Stream:
    """One subscription's events, read in the background as they come."""

    def __init__(self, socket: GqlSocket) -> None:
        self.events: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.task = asyncio.create_task(self._read(socket))

    async def _read(self, socket: GqlSocket) -> None:
        async for message in socket.events("p"):
            assert message["type"] == "next", message
            self.events.append(message["payload"]["data"]["campaignProgress"])
            self.arrived.set()

    async def until(self, check: Any) -> dict[str, Any]:
        """The first event (from now on, or already read) that `check` accepts."""
        deadline = time.monotonic() + WAIT
        seen = 0
        while True:
            for event in self.events[seen:]:
                if check(event):
                    return event
            seen = len(self.events)
            assert not self.task.done(), self.events
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())

    async def ended(self) -> list[dict[str, Any]]:
        await asyncio.wait_for(self.task, WAIT)
        return self.events


@asynccontextmanager
async def completed_campaign(
    gql: GqlClient,
    session: AsyncSession,
    settings: Settings,
    admin_key: str,
    start_worker: StartWorker,
    contacts: int,
    **settle: float,
) -> AsyncIterator[tuple[str, Stream, list[tuple[str, int]]]]:
    """A campaign sent to completion on the fake Cloud API under a watching subscription:
    (the server's URL, the stream, each message's (wamid, id))."""
    campaign_id = await seed_campaign(session, contacts)
    variables = {"id": str(campaign_id)}
    worker = await start_worker(processes=1, whatsapp_rate_per_second=200)
    update = {"whatsapp_app_secret": SECRET, **settle}
    with serve(settings.model_copy(update=update)) as server:
        async with gql_socket(server.url) as socket:
            assert (await socket.init(admin_key))["type"] == "connection_ack"
            await socket.subscribe("p", PROGRESS, variables)
            stream = Stream(socket)
            await stream.until(lambda e: e["status"] == "DRAFT")
            assert (await gql.ok(START, variables))["startCampaign"]["__typename"] == (
                "StartCampaignSuccess"
            )
            await stream.until(lambda e: e["status"] == "COMPLETED")
            rows = await session.execute(
                text(
                    "SELECT provider_message_id, id FROM messages WHERE campaign_id = :c"
                    " ORDER BY id"
                ),
                {"c": campaign_id},
            )
            await session.commit()
            try:
                yield server.url, stream, [(row[0], row[1]) for row in rows]
            finally:
                stream.task.cancel()
    worker.stop()


async def post(url: str, payload: dict[str, Any]) -> None:
    body, headers = signed(SECRET, payload)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        response = await http.post("/webhooks/whatsapp", content=body, headers=headers)
    assert response.status_code == 200


async def test_the_stream_carries_late_statuses_and_ends_on_the_settled_figures(
    gql: GqlClient,
    session: AsyncSession,
    settings: Settings,
    admin_key: str,
    start_worker: StartWorker,
) -> None:
    # given a 12-contact campaign sent to completion under a subscription, on a server that
    # waits for 3 s of quiet after the final status
    async with completed_campaign(
        gql, session, settings, admin_key, start_worker, 12, progress_settle_s=3.0
    ) as (url, stream, messages):
        completed = await stream.until(lambda e: e["status"] == "COMPLETED")

        # when delivery statuses come for all of them after completion, then reads for 5
        await post(url, statuses([(wamid, key, "delivered") for wamid, key in messages]))
        await stream.until(lambda e: e["stats"]["delivered"] == 12)
        await post(url, statuses([(wamid, key, "read") for wamid, key in messages[:5]]))
        events = await stream.ended()

    # then the stream carried them after the final status, and its last event (the only one
    # settled) has the settled figures
    assert completed == {
        "status": "COMPLETED",
        "settled": False,
        "stats": {"sent": 12, "delivered": 0, "read": 0},
    }
    assert events[-1] == {
        "status": "COMPLETED",
        "settled": True,
        "stats": {"sent": 0, "delivered": 7, "read": 5},
    }
    assert [e for e in events if e["settled"]] == [events[-1]]
    after = events[events.index(completed) :]
    assert [e["stats"]["delivered"] + e["stats"]["read"] for e in after][:2] == [0, 12]


async def test_statuses_that_keep_coming_end_the_stream_at_the_max_window(
    gql: GqlClient,
    session: AsyncSession,
    settings: Settings,
    admin_key: str,
    start_worker: StartWorker,
) -> None:
    # given a completed campaign on a server that waits for 3 s of quiet, at most 4 s after
    # the final status
    async with completed_campaign(
        gql,
        session,
        settings,
        admin_key,
        start_worker,
        20,
        progress_settle_s=3.0,
        progress_settle_max_s=4.0,
    ) as (url, stream, messages):
        seen_final = time.monotonic()

        # when a status arrives every 0.3 s, for far longer than that
        pending = [(wamid, key, name) for name in ("delivered", "read") for wamid, key in messages]

        async def keep_posting() -> None:
            while pending:
                await post(url, statuses([pending.pop(0)]))
                await asyncio.sleep(0.3)

        posting = asyncio.create_task(keep_posting())
        events = await stream.ended()
        lasted = time.monotonic() - seen_final
        posting.cancel()

    # then the stream ended on a settled event while statuses were still coming, about 4 s
    # after the final status (never waiting for 3 s of quiet)
    assert pending, "every status was posted before the stream ended"
    assert events[-1]["settled"] is True
    assert [e for e in events if e["settled"]] == [events[-1]]
    moved = [e for e in events if e["status"] == "COMPLETED" and e["stats"]["sent"] < 20]
    assert len(moved) >= 3, events
    assert lasted < 4.0 + 3.0, lasted


@pytest.mark.parametrize(("ended_ago", "settled"), [(120.0, [True]), (0.0, [False, True])])
async def test_a_campaign_that_ended_before_the_subscription(
    session: AsyncSession, settings: Settings, admin_key: str, ended_ago: float, settled: list[bool]
) -> None:
    # given a campaign that completed `ended_ago` seconds ago, on a server allowing 1 s of quiet and
    # at most 60 s
    campaign_id = await seed_campaign(session, 2)
    await session.execute(
        text(
            "UPDATE campaigns SET status = 'completed',"
            " completed_at = now() - make_interval(secs => :ago) WHERE id = :c"
        ),
        {"c": campaign_id, "ago": ended_ago},
    )
    await session.commit()
    update = {"progress_settle_s": 1.0, "progress_settle_max_s": 60.0}
    with serve(settings.model_copy(update=update)) as server:
        async with gql_socket(server.url) as socket:
            assert (await socket.init(admin_key))["type"] == "connection_ack"

            # when
            await socket.subscribe("p", PROGRESS, {"id": str(campaign_id)})
            events = await asyncio.wait_for(Stream(socket).ended(), WAIT)

    # then one ended long ago is settled at once; one that just ended after its quiet second
    assert [e["settled"] for e in events] == settled
    assert {e["status"] for e in events} == {"COMPLETED"}
