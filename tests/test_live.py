"""Live progress over WebSocket: real uvicorn, real Redis pub/sub, real Dramatiq workers."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from app.config import Settings
from app.live.caps import PREFIX
from schema.common.ids import global_id
from tests.conftest import GqlClient, Server, StartWorker, create_api_key, serve
from tests.fake_whatsapp import WAIT_S, free_port, seed_campaign, status_counts
from tests.ws_client import GqlSocket, gql_socket, ws_url

pytestmark = pytest.mark.asyncio

PROGRESS = """
subscription Progress($id: ID!) {
  campaignProgress(id: $id) {
    id
    status
    campaign { id status }
    stats { total pending sending sent delivered read failed }
    messagesPerSecond
    etaSeconds
    settled
  }
}
"""
START = "mutation Start($id: ID!) { startCampaign(id: $id) { __typename } }"
REVOKE = "mutation Revoke($id: ID!) { revokeApiKey(id: $id) { __typename } }"
NO_POLLING = {"live_poll_s": 60.0, "live_fallback_poll_s": 60.0}
QUICK_SETTLE = {"progress_settle_s": 0.5}  # no late status comes in these tests
WAIT = 60.0  # generous: the machine is shared; the assertions are about content, not time


async def closed_with(socket: GqlSocket) -> int | None:
    """Read until the server closes the socket; its close code."""
    try:
        while True:
            await asyncio.wait_for(socket.receive(), WAIT)
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None


async def collect(socket: GqlSocket, op_id: str) -> list[dict[str, Any]]:
    """Every message of one operation, until its `complete` or `error`."""

    async def run() -> list[dict[str, Any]]:
        return [message async for message in socket.events(op_id)]

    return await asyncio.wait_for(run(), WAIT)


def processed(event: dict[str, Any]) -> int:
    stats = event["payload"]["data"]["campaignProgress"]["stats"]
    return int(stats["sent"] + stats["delivered"] + stats["read"] + stats["failed"])


async def key_id(session: AsyncSession, key: str) -> int:
    row = await session.execute(
        text("SELECT id FROM api_keys WHERE key_prefix = :p"), {"p": key[:9]}
    )
    await session.commit()
    return int(row.scalar_one())


@dataclass(frozen=True)
class ApiProcess:
    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def api_process(settings: Settings, **extra: str) -> Iterator[ApiProcess]:
    """`herald serve` in a process of its own, on the same database and Redis."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(
        HERALD_DATABASE_URL=str(settings.database_url),
        HERALD_REDIS_URL=str(settings.redis_url),
        HERALD_ENV="dev",
        **extra,
    )
    herald = Path(sys.executable).with_name("herald")
    process = subprocess.Popen(
        [str(herald), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S  # booting takes long on a busy machine
        while True:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("herald serve exited or did not start")
            time.sleep(0.1)
        yield ApiProcess(url, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


async def test_campaign_progress_counts_up_then_completes_on_two_api_processes(
    gql: GqlClient,
    session: AsyncSession,
    settings: Settings,
    admin_key: str,
    start_worker: StartWorker,
) -> None:
    # given a 600-contact campaign paced at 200 messages/s, watched from this process and
    # from a second API process, both polling only once a minute: what they see in between
    # comes through Redis pub/sub
    campaign_id = await seed_campaign(session, 600)
    variables = {"id": str(campaign_id)}
    worker = await start_worker(whatsapp_rate_per_second=200, dispatch_batch_size=50)
    with (
        serve(settings.model_copy(update=NO_POLLING | QUICK_SETTLE)) as server,
        api_process(
            settings,
            HERALD_LIVE_POLL_S="60",
            HERALD_LIVE_FALLBACK_POLL_S="60",
            HERALD_PROGRESS_SETTLE_S="0.5",
        ) as other,
    ):
        async with gql_socket(server.url) as here, gql_socket(other.url) as there:
            for socket in (here, there):
                assert (await socket.init(admin_key))["type"] == "connection_ack"
                await socket.subscribe("p", PROGRESS, variables)
                first = await asyncio.wait_for(socket.receive(), WAIT)
                # the current state at once: a draft with no messages yet
                assert first["type"] == "next"
                assert first["payload"]["data"]["campaignProgress"]["status"] == "DRAFT"

            # when the campaign starts
            assert (await gql.ok(START, variables))["startCampaign"]["__typename"] == (
                "StartCampaignSuccess"
            )
            events_here, events_there = await asyncio.gather(
                collect(here, "p"), collect(there, "p")
            )
    worker.stop()

    # then both processes saw counts go up several times, then the COMPLETED event, and the
    # same once more, settled, as the last
    for events in (events_here, events_there):
        assert {e["type"] for e in events} == {"next"}, events
        progress = [e["payload"]["data"]["campaignProgress"] for e in events]
        assert progress[-1]["status"] == "COMPLETED"
        assert [p["settled"] for p in progress if p["status"] == "COMPLETED"] == [False, True]
        assert [p["settled"] for p in progress[:-1]] == [False] * (len(progress) - 1)
        assert progress[-1]["stats"] == {
            "total": 600,
            "pending": 0,
            "sending": 0,
            "sent": 600,
            "delivered": 0,
            "read": 0,
            "failed": 0,
        }
        counts = [processed(e) for e in events]
        assert counts == sorted(counts)
        assert len({c for c in counts if 0 < c < 600}) >= 2, counts
        assert any(p["messagesPerSecond"] > 0 for p in progress)
        assert progress[-1]["etaSeconds"] is None
        # one id for the campaign's progress, and the campaign itself, read at each event
        assert {p["id"] for p in progress} == {global_id("CampaignProgress", campaign_id)}
        assert progress[-1]["campaign"] == {
            "id": global_id("Campaign", campaign_id),
            "status": "COMPLETED",
        }
        assert "SENDING" in {p["campaign"]["status"] for p in progress}
    assert await status_counts(session, campaign_id) == {"sent": 600}


@pytest.mark.parametrize("key", [None, "hk_not-a-real-key"])
async def test_missing_or_invalid_key_is_refused_with_4401(server: Server, key: str | None) -> None:
    async with gql_socket(server.url) as socket:
        # when
        payload = {} if key is None else {"Authorization": f"Bearer {key}"}
        await socket.send({"type": "connection_init", "payload": payload})

        # then: no ack, the socket is closed as unauthorized
        assert await closed_with(socket) == 4401


async def test_subscribe_before_init_is_refused(server: Server, session: AsyncSession) -> None:
    # given a campaign
    campaign_id = await seed_campaign(session, 1)

    async with gql_socket(server.url) as socket:
        # when a client skips connection_init
        await socket.subscribe("p", PROGRESS, {"id": str(campaign_id)})

        # then
        assert await closed_with(socket) == 4401


async def test_unknown_campaign_is_a_graphql_error_and_the_socket_stays_open(
    server: Server, session: AsyncSession, settings: Settings
) -> None:
    # given a viewer key and one campaign
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 3)

    async with gql_socket(server.url) as socket:
        assert (await socket.init(viewer))["type"] == "connection_ack"

        # when
        await socket.subscribe("missing", PROGRESS, {"id": "999999"})
        missing = await collect(socket, "missing")
        # a contact's id of the campaign's key names no campaign either
        contact = global_id("Contact", campaign_id)
        await socket.subscribe("other", PROGRESS, {"id": contact})
        other = await collect(socket, "other")
        # and the same connection still serves a real campaign
        await socket.subscribe("real", PROGRESS, {"id": str(campaign_id)})
        real = await asyncio.wait_for(socket.receive(), WAIT)

    # then
    assert [m["type"] for m in missing] == ["next"]
    assert missing[0]["payload"]["data"] is None
    assert [e["extensions"]["code"] for e in missing[0]["payload"]["errors"]] == ["NOT_FOUND"]
    assert [e["extensions"]["id"] for e in other[0]["payload"]["errors"]] == [contact]
    assert [e["extensions"]["code"] for e in other[0]["payload"]["errors"]] == ["NOT_FOUND"]
    assert real["type"] == "next"
    assert real["payload"]["data"]["campaignProgress"]["stats"]["total"] == 0


async def test_revoking_the_key_ends_its_streams(
    gql: GqlClient, server: Server, session: AsyncSession, settings: Settings
) -> None:
    # given a viewer watching a campaign
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 2)
    async with gql_socket(server.url) as socket:
        assert (await socket.init(viewer))["type"] == "connection_ack"
        await socket.subscribe("p", PROGRESS, {"id": str(campaign_id)})
        assert (await asyncio.wait_for(socket.receive(), WAIT))["type"] == "next"

        # when an admin revokes the key
        revoked = await gql.ok(REVOKE, {"id": str(await key_id(session, viewer))})
        assert revoked["revokeApiKey"]["__typename"] == "RevokeApiKeySuccess"

        # then the connection is closed as unauthorized
        assert await closed_with(socket) == 4401

    # and the key cannot connect again
    async with gql_socket(server.url) as again:
        await again.send(
            {"type": "connection_init", "payload": {"Authorization": f"Bearer {viewer}"}}
        )
        assert await closed_with(again) == 4401


async def test_a_key_revoked_without_notice_is_caught_by_the_recheck(
    session: AsyncSession, settings: Settings
) -> None:
    # given a server re-checking keys every 0.3 s, and a viewer watching a campaign
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 2)
    with serve(settings.model_copy(update={"live_key_recheck_s": 0.3})) as quick:
        async with gql_socket(quick.url) as socket:
            assert (await socket.init(viewer))["type"] == "connection_ack"
            await socket.subscribe("p", PROGRESS, {"id": str(campaign_id)})
            assert (await asyncio.wait_for(socket.receive(), WAIT))["type"] == "next"

            # when the key is revoked straight in the database (as `herald apikey revoke`
            # on another machine could, with Redis unreachable)
            await session.execute(
                text("UPDATE api_keys SET revoked_at = now() WHERE key_prefix = :p"),
                {"p": viewer[:9]},
            )
            await session.commit()

            # then
            assert await closed_with(socket) == 4401


async def test_herald_apikey_revoke_ends_the_keys_streams_at_once(
    session: AsyncSession, settings: Settings
) -> None:
    # given a server whose periodic key recheck comes too late to matter, and a viewer
    # watching a campaign
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 2)
    with serve(settings.model_copy(update={"live_key_recheck_s": 3600.0})) as late:
        async with gql_socket(late.url) as socket:
            assert (await socket.init(viewer))["type"] == "connection_ack"
            await socket.subscribe("p", PROGRESS, {"id": str(campaign_id)})
            assert (await asyncio.wait_for(socket.receive(), WAIT))["type"] == "next"

            # when an operator revokes the key from the command line, another process
            env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
            env.update(
                HERALD_DATABASE_URL=str(settings.database_url),
                HERALD_REDIS_URL=str(settings.redis_url),
            )
            revoke = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("herald")),
                *("apikey", "revoke", str(await key_id(session, viewer))),
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
            )
            assert await asyncio.wait_for(revoke.wait(), WAIT) == 0

            # then the socket is closed as unauthorized, by the notice
            assert await closed_with(socket) == 4401


async def test_subscriptions_are_capped_per_connection(
    server: Server, session: AsyncSession, settings: Settings
) -> None:
    # given a connection holding as many subscriptions as allowed
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 1)
    cap = settings.live_max_subscriptions_per_connection
    async with gql_socket(server.url) as socket:
        assert (await socket.init(viewer))["type"] == "connection_ack"
        for n in range(cap):
            await socket.subscribe(f"s{n}", PROGRESS, {"id": str(campaign_id)})
        firsts = [await asyncio.wait_for(socket.receive(), WAIT) for _ in range(cap)]

        # when one more is asked for
        await socket.subscribe("over", PROGRESS, {"id": str(campaign_id)})
        refused = await collect(socket, "over")

        # and one is ended, which frees its slot
        await socket.send({"id": "s0", "type": "complete"})
        await socket.subscribe("again", PROGRESS, {"id": str(campaign_id)})
        again = await asyncio.wait_for(socket.receive(), WAIT)

    # then
    assert {m["type"] for m in firsts} == {"next"}
    assert [m["type"] for m in refused] == ["error"]
    assert [e["extensions"]["code"] for e in refused[0]["payload"]] == ["SUBSCRIPTION_LIMIT"]
    assert (again["id"], again["type"]) == ("again", "next")


async def test_subscriptions_are_capped_per_key_across_connections(
    session: AsyncSession, settings: Settings
) -> None:
    # given a server allowing 3 subscriptions per key, and a key holding 2 + 1 of them
    viewer = await create_api_key(settings, "viewer")
    other = await create_api_key(settings, "viewer", name="other")
    campaign_id = await seed_campaign(session, 1)
    variables = {"id": str(campaign_id)}
    with serve(settings.model_copy(update={"live_max_subscriptions_per_key": 3})) as capped:
        async with (
            gql_socket(capped.url) as first,
            gql_socket(capped.url) as second,
            gql_socket(capped.url) as third,
        ):
            for socket, key in ((first, viewer), (second, viewer), (third, other)):
                assert (await socket.init(key))["type"] == "connection_ack"
            for op_id in ("a", "b"):
                await first.subscribe(op_id, PROGRESS, variables)
                assert (await asyncio.wait_for(first.receive(), WAIT))["type"] == "next"
            await second.subscribe("c", PROGRESS, variables)
            assert (await asyncio.wait_for(second.receive(), WAIT))["type"] == "next"

            # when the same key asks for a fourth, and another key for its first
            await second.subscribe("d", PROGRESS, variables)
            refused = await collect(second, "d")
            await third.subscribe("e", PROGRESS, variables)
            allowed = await asyncio.wait_for(third.receive(), WAIT)

    # then only the key over its cap is refused
    assert [m["type"] for m in refused] == ["error"]
    assert [e["extensions"]["code"] for e in refused[0]["payload"]] == ["SUBSCRIPTION_LIMIT"]
    assert allowed["type"] == "next"


async def subscribe_until_granted(socket: GqlSocket, prefix: str, variables: dict[str, str]) -> int:
    """Subscribe until the cap lets one through (a slot freed elsewhere arrives a Redis round
    trip later); how many were refused first."""
    deadline = time.monotonic() + WAIT
    for attempt in range(10_000):
        await socket.subscribe(f"{prefix}{attempt}", PROGRESS, variables)
        message = await asyncio.wait_for(socket.receive(), WAIT)
        if message["type"] == "next":
            return attempt
        assert [e["extensions"]["code"] for e in message["payload"]] == ["SUBSCRIPTION_LIMIT"]
        assert time.monotonic() < deadline, "the cap never let one through"
        await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


async def test_the_per_key_cap_holds_across_api_processes(
    session: AsyncSession, settings: Settings
) -> None:
    # given two API processes allowing 3 subscriptions per key, and a key holding 2 of them
    # on the first and 1 on the second
    viewer = await create_api_key(settings, "viewer")
    other = await create_api_key(settings, "viewer", name="other")
    campaign_id = await seed_campaign(session, 1)
    variables = {"id": str(campaign_id)}
    with (
        serve(settings.model_copy(update={"live_max_subscriptions_per_key": 3})) as here,
        api_process(settings, HERALD_LIVE_MAX_SUBSCRIPTIONS_PER_KEY="3") as there,
    ):
        async with (
            gql_socket(here.url) as first,
            gql_socket(there.url) as second,
            gql_socket(there.url) as third,
        ):
            for socket, key in ((first, viewer), (second, viewer), (third, other)):
                assert (await socket.init(key))["type"] == "connection_ack"
            for op_id in ("a", "b"):
                await first.subscribe(op_id, PROGRESS, variables)
                assert (await asyncio.wait_for(first.receive(), WAIT))["type"] == "next"
            await second.subscribe("c", PROGRESS, variables)
            assert (await asyncio.wait_for(second.receive(), WAIT))["type"] == "next"

            # when the same key asks the second process for a fourth, and another key for
            # its first
            await second.subscribe("d", PROGRESS, variables)
            refused = await collect(second, "d")
            await third.subscribe("e", PROGRESS, variables)
            allowed = await asyncio.wait_for(third.receive(), WAIT)

            # and one of the key's subscriptions on the first process ends
            await first.send({"id": "a", "type": "complete"})
            await subscribe_until_granted(second, "again", variables)

    # then only the key over its cap was refused, and a slot freed on one process serves
    # the other
    assert [m["type"] for m in refused] == ["error"]
    assert [e["extensions"]["code"] for e in refused[0]["payload"]] == ["SUBSCRIPTION_LIMIT"]
    assert refused[0]["payload"][0]["extensions"]["limit"] == 3
    assert allowed["type"] == "next"


async def test_a_burst_of_subscriptions_is_counted_in_redis_then_given_back(
    session: AsyncSession, settings: Settings
) -> None:
    # given a key opening 200 subscriptions at once over 20 sockets (more than the Redis
    # client's pool of connections)
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 1)
    variables = {"id": str(campaign_id)}
    counted = redis.Redis.from_url(str(settings.redis_url))
    cap_key = f"{PREFIX}{await key_id(session, viewer)}"
    with serve(settings.model_copy(update={"live_max_subscriptions_per_key": 300})) as server:
        async with AsyncExitStack() as stack:
            sockets = [await stack.enter_async_context(gql_socket(server.url)) for _ in range(20)]
            for socket in sockets:
                assert (await socket.init(viewer))["type"] == "connection_ack"

            # when
            for socket in sockets:
                for n in range(10):
                    await socket.subscribe(f"s{n}", PROGRESS, variables)
            firsts = [
                await asyncio.wait_for(socket.receive(), WAIT)
                for socket in sockets
                for _ in range(10)
            ]
            held = counted.zcard(cap_key)

        # and when they all close
        deadline = time.monotonic() + WAIT
        for _ in range(10_000):
            if not counted.zcard(cap_key) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        left = counted.zcard(cap_key)

    # then every one was granted and counted in Redis, and every slot was given back
    assert {m["type"] for m in firsts} == {"next"}
    assert held == 200
    assert left == 0


async def test_slots_held_by_a_killed_api_process_come_back_with_their_leases(
    session: AsyncSession, settings: Settings
) -> None:
    # given two API processes allowing 2 subscriptions per key with 2 s leases, and a key
    # holding both on the second
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 1)
    variables = {"id": str(campaign_id)}
    caps = {"live_max_subscriptions_per_key": 2, "live_subscription_lease_s": 2.0}
    env = {"HERALD_LIVE_MAX_SUBSCRIPTIONS_PER_KEY": "2", "HERALD_LIVE_SUBSCRIPTION_LEASE_S": "2"}
    with serve(settings.model_copy(update=caps)) as here, api_process(settings, **env) as there:
        async with gql_socket(here.url) as mine:
            assert (await mine.init(viewer))["type"] == "connection_ack"
            async with gql_socket(there.url) as doomed:
                assert (await doomed.init(viewer))["type"] == "connection_ack"
                for op_id in ("a", "b"):
                    await doomed.subscribe(op_id, PROGRESS, variables)
                    assert (await asyncio.wait_for(doomed.receive(), WAIT))["type"] == "next"
                await mine.subscribe("over", PROGRESS, variables)
                refused = await collect(mine, "over")

                # when the second process dies without giving its slots back
                there.process.kill()
                there.process.wait(timeout=30)

            # then the key gets its slots back on the first process once the leases lapse
            await subscribe_until_granted(mine, "after", variables)

    assert [e["extensions"]["code"] for e in refused[0]["payload"]] == ["SUBSCRIPTION_LIMIT"]


async def test_without_redis_the_per_key_cap_holds_per_process(
    session: AsyncSession, settings: Settings
) -> None:
    # given a server whose Redis is unreachable, allowing 2 subscriptions per key
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 1)
    variables = {"id": str(campaign_id)}
    degraded = {
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "live_max_subscriptions_per_key": 2,
    }
    with serve(settings.model_copy(update=degraded)) as server:
        async with gql_socket(server.url) as first, gql_socket(server.url) as second:
            for socket in (first, second):
                assert (await socket.init(viewer))["type"] == "connection_ack"
            await first.subscribe("a", PROGRESS, variables)
            granted = [await asyncio.wait_for(first.receive(), WAIT)]
            await second.subscribe("b", PROGRESS, variables)
            granted.append(await asyncio.wait_for(second.receive(), WAIT))

            # when the key asks for a third
            await second.subscribe("c", PROGRESS, variables)
            refused = await collect(second, "c")

    # then subscribing still works, within the cap this process counts
    assert [m["type"] for m in granted] == ["next", "next"]
    assert [e["extensions"]["code"] for e in refused[0]["payload"]] == ["SUBSCRIPTION_LIMIT"]


async def test_connection_without_init_times_out(settings: Settings) -> None:
    with serve(settings.model_copy(update={"live_connection_init_timeout_s": 0.3})) as quick:
        async with gql_socket(quick.url) as socket:
            # when the client never sends connection_init
            code = await closed_with(socket)

    # then
    assert code == 4408


async def test_server_pings_and_drops_a_peer_that_never_answers(
    session: AsyncSession, settings: Settings
) -> None:
    viewer = await create_api_key(settings, "viewer")
    with serve(settings.model_copy(update={"live_ping_interval_s": 0.2})) as pinging:
        async with gql_socket(pinging.url) as socket:
            assert (await socket.init(viewer))["type"] == "connection_ack"

            # when the client reads without answering pings
            ping = await asyncio.wait_for(socket.ws.recv(), WAIT)
            try:
                while True:
                    await asyncio.wait_for(socket.ws.recv(), WAIT)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None

    # then it got a ping, then was closed
    assert '"ping"' in str(ping)
    assert code == 4408


async def test_a_peer_answering_pings_stays_connected(
    session: AsyncSession, settings: Settings
) -> None:
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 1)
    with serve(settings.model_copy(update={"live_ping_interval_s": 0.1})) as pinging:
        async with gql_socket(pinging.url) as socket:
            assert (await socket.init(viewer))["type"] == "connection_ack"
            await socket.subscribe("p", PROGRESS, {"id": str(campaign_id)})
            first = await asyncio.wait_for(socket.receive(), WAIT)

            # when the client reads for a while, answering the pings as they come
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(socket.receive(), 0.6)
            await socket.subscribe("q", PROGRESS, {"id": str(campaign_id)})
            second = await asyncio.wait_for(socket.receive(), WAIT)

    # then the connection is still serving
    assert (first["id"], first["type"]) == ("p", "next")
    assert (second["id"], second["type"]) == ("q", "next")


async def test_query_limits_apply_to_subscription_documents(
    server: Server, session: AsyncSession, settings: Settings
) -> None:
    # given a document with more aliases than allowed
    viewer = await create_api_key(settings, "viewer")
    aliases = " ".join(f"a{n}: status" for n in range(settings.query_max_aliases + 1))
    document = f"subscription($id: ID!) {{ campaignProgress(id: $id) {{ {aliases} }} }}"
    async with gql_socket(server.url) as socket:
        assert (await socket.init(viewer))["type"] == "connection_ack"

        # when
        await socket.subscribe("big", document, {"id": "1"})
        message = await asyncio.wait_for(socket.receive(), WAIT)

    # then it is refused before anything runs
    assert (message["id"], message["type"]) == ("big", "error")
    assert [e["extensions"]["code"] for e in message["payload"]] == ["TOO_MANY_ALIASES"]


async def test_without_redis_subscribers_fall_back_to_periodic_reads(
    session: AsyncSession, settings: Settings
) -> None:
    # given a server whose Redis is unreachable (nothing listens on the port), re-reading
    # every 0.3 s, and a subscriber on a sending campaign
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 10)
    for sql in (
        "INSERT INTO messages (campaign_id, contact_id) SELECT :c, id FROM contacts",
        "UPDATE campaigns SET status = 'sending' WHERE id = :c",
    ):
        await session.execute(text(sql), {"c": campaign_id})
    await session.commit()
    no_redis = {
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "live_fallback_poll_s": 0.3,
        "live_poll_s": 60.0,  # the safety re-read would be too late: only the fallback counts
        **QUICK_SETTLE,
    }
    with serve(settings.model_copy(update=no_redis)) as degraded:
        async with gql_socket(degraded.url) as socket:
            assert (await socket.init(viewer))["type"] == "connection_ack"
            await socket.subscribe("p", PROGRESS, {"id": str(campaign_id)})
            first = await asyncio.wait_for(socket.receive(), WAIT)

            # when messages are sent and the campaign completes, with no notice reaching it
            for sql in (
                "UPDATE messages SET status = 'sent' WHERE campaign_id = :c",
                "UPDATE campaigns SET status = 'completed' WHERE id = :c",
            ):
                await session.execute(text(sql), {"c": campaign_id})
            await session.commit()
            rest = await collect(socket, "p")

    # then the periodic read delivers the final state, and the stream ends
    assert first["payload"]["data"]["campaignProgress"]["stats"]["pending"] == 10
    final = rest[-1]["payload"]["data"]["campaignProgress"]
    assert (final["status"], final["settled"]) == ("COMPLETED", True)
    assert final["stats"]["sent"] == 10


async def test_a_query_over_the_socket_gets_one_result(server: Server, settings: Settings) -> None:
    viewer = await create_api_key(settings, "viewer")
    async with gql_socket(server.url) as socket:
        assert (await socket.init(viewer))["type"] == "connection_ack"

        # when
        await socket.subscribe("q", "{ dashboard { campaignCount } }")
        messages = await collect(socket, "q")

    # then: one result, then the operation completes
    assert [m["type"] for m in messages] == ["next"]
    assert messages[0]["payload"]["data"] == {"dashboard": {"campaignCount": 0}}


MALFORMED = [
    "[1]",
    '"x"',
    "1",
    "null",
    '{"type": 1}',
    '{"type": "subscribe", "id": 1, "payload": {"query": "{ version }"}}',
    '{"type": "subscribe", "id": "a", "payload": "x"}',
    '{"type": "subscribe", "id": "a", "payload": {"query": 1}}',
    '{"type": "subscribe", "id": "a", "payload": {"query": "{ version }", "variables": []}}',
    '{"type": "complete", "id": null}',
    '{"type": "ping", "payload": 1}',
]


@pytest.mark.parametrize("frame", MALFORMED)
async def test_a_malformed_message_closes_the_socket_with_4400(
    server: Server, settings: Settings, frame: str, caplog: pytest.LogCaptureFixture
) -> None:
    # given an acknowledged connection
    viewer = await create_api_key(settings, "viewer")
    with caplog.at_level(logging.WARNING):
        async with gql_socket(server.url) as socket:
            assert (await socket.init(viewer))["type"] == "connection_ack"

            # when a frame is valid JSON but not a graphql-transport-ws message
            await socket.ws.send(frame)

            # then the server closes with 4400 and says why
            try:
                while True:
                    await asyncio.wait_for(socket.receive(), WAIT)
            except ConnectionClosed as closed:
                received = closed.rcvd
    assert received is not None
    assert (received.code, bool(received.reason)) == (4400, True)
    # and nothing was logged as a server error
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_before_its_key_a_socket_is_refused_a_large_message_at_its_header(
    server: Server, settings: Settings
) -> None:
    # given a socket upgraded by hand, with no connection_init yet
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /graphql HTTP/1.1\r\nHost: herald\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
    )
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    size = settings.request_max_bytes_anonymous + 1
    assert size < settings.request_max_bytes

    # when a text frame (masked, with a zero key) announces more than an anonymous body may
    # hold, and only its first byte follows
    writer.write(bytes([0x81, 0x80 | 127]) + size.to_bytes(8, "big") + bytes(4) + b"{")

    # then the server closes with 1009 without waiting for the rest
    close = await asyncio.wait_for(reader.readexactly(4), WAIT)
    writer.close()
    assert (close[0], int.from_bytes(close[2:4], "big")) == (0x88, 1009)


async def test_once_its_key_is_accepted_a_socket_takes_messages_as_large_as_a_request(
    server: Server, settings: Settings
) -> None:
    # given an acknowledged connection
    viewer = await create_api_key(settings, "viewer")
    async with gql_socket(server.url) as socket:
        assert (await socket.init(viewer))["type"] == "connection_ack"

        # when it sends a message larger than an anonymous body may be
        padding = "x" * (settings.request_max_bytes_anonymous * 4)
        await socket.send({"type": "ping", "payload": {"padding": padding}})

        # then it is read and answered
        answer = await asyncio.wait_for(socket.receive(), WAIT)
    assert answer["type"] == "pong"


@pytest.mark.parametrize(
    ("offered", "named"),
    [
        pytest.param(["graphql-ws"], "subscriptions-transport-ws", id="legacy"),
        pytest.param([], "no subprotocol", id="none"),
        pytest.param(["mqtt"], "'mqtt'", id="another"),
    ],
)
async def test_a_socket_without_graphql_transport_ws_is_told_why_with_4406(
    server: Server, offered: list[str], named: str
) -> None:
    # when a client opens the socket with another subprotocol, or none
    async with connect(
        ws_url(server.url),
        subprotocols=offered or None,  # type: ignore[arg-type]
        open_timeout=10,
    ) as ws:
        accepted = ws.subprotocol
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)

    # then the handshake answers with the subprotocol it asked for (a browser that does not
    # get it back fails the connection with a bare 1006), and the close says what to speak
    assert accepted == (offered[0] if offered else None)
    received = closed.value.rcvd
    assert received is not None
    assert received.code == 4406
    assert named in received.reason
    assert "use graphql-transport-ws" in received.reason
