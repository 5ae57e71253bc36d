"""Subscriptions over HTTP: graphql-sse's distinct connections mode and Apollo's multipart
subscriptions, on a real server over real HTTP (httpx streaming), with WebSocket's key,
caps and shared streams, and load shedding that does not count open streams."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.live.caps import PREFIX
from tests.conftest import GqlClient, Server, StartWorker, create_api_key, serve
from tests.fake_whatsapp import seed_campaign, status_counts
from tests.test_live import key_id
from tests.ws_client import gql_socket

pytestmark = pytest.mark.asyncio

PROGRESS = """
subscription Progress($id: ID!) {
  campaignProgress(id: $id) { status stats { total pending sent failed } }
}
"""
START = "mutation Start($id: ID!) { startCampaign(id: $id) { __typename } }"
SSE = "text/event-stream"
MULTIPART = 'multipart/mixed;subscriptionSpec="1.0"'
# What Apollo Client's HttpLink sends for a subscription: a stream, or JSON.
APOLLO = (
    'multipart/mixed;boundary="graphql";subscriptionSpec=1.0,'
    "application/graphql-response+json,application/json;q=0.9"
)
WAIT = 60.0  # generous: the machine is shared; the assertions are about content, not time


class Stream:
    """One streamed answer, read event by event (SSE) or part by part (multipart)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._chunks = response.aiter_text()
        self._buffer = ""

    async def _more(self) -> None:
        self._buffer += await asyncio.wait_for(anext(self._chunks), WAIT)

    async def event(self) -> tuple[str, Any]:
        """The next SSE event (heartbeat comments skipped): its name and decoded data."""
        while True:
            while "\r\n\r\n" not in self._buffer:
                await self._more()
            block, self._buffer = self._buffer.split("\r\n\r\n", 1)
            fields = dict(line.split(": ", 1) for line in block.split("\r\n"))
            if "event" in fields:
                data = fields.get("data", "")
                return fields["event"], orjson.loads(data) if data else None

    async def part(self) -> Any:
        """The next multipart part's JSON (heartbeats `{}` included); None at the end."""
        delimiter = "\r\n--graphql"
        while delimiter not in self._buffer:
            await self._more()
        part, self._buffer = self._buffer.split(delimiter, 1)
        if part.startswith("--"):  # the closing delimiter's tail
            return None
        _, _, body = part.partition("\r\n\r\n")
        return orjson.loads(body) if body else await self.part()

    async def rest(self) -> str:
        """What is left until the server ends the response."""
        async for chunk in self._chunks:
            self._buffer += chunk
        rest, self._buffer = self._buffer, ""
        return rest

    async def events_until_complete(self) -> list[Any]:
        """The data of every `next` event, until `complete`."""
        found = []
        while (event := await self.event())[0] == "next":
            found.append(event[1])
        assert event[0] == "complete"
        return found


@asynccontextmanager
async def stream(
    server: Server,
    key: str | None,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    accept: str = SSE,
    method: str = "POST",
) -> AsyncIterator[Stream]:
    headers = {"Accept": accept}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT) as http:
        if method == "GET":
            params = {"query": query, "variables": orjson.dumps(variables or {}).decode()}
            request = http.build_request("GET", "/graphql", params=params, headers=headers)
        else:
            body = {"query": query, "variables": variables or {}}
            request = http.build_request("POST", "/graphql", json=body, headers=headers)
        response = await http.send(request, stream=True)
        try:
            yield Stream(response)
        finally:
            await response.aclose()


async def held_slots(settings: Settings, key: str, session: AsyncSession) -> int:
    client = aioredis.Redis.from_url(str(settings.redis_url))
    try:
        return int(await client.zcard(PREFIX + str(await key_id(session, key))))
    finally:
        await client.aclose()


async def eventually(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


# -- graphql-sse ---------------------------------------------------------------------------------


async def test_campaign_progress_arrives_over_sse_until_the_campaign_completes(
    server: Server,
    gql: GqlClient,
    session: AsyncSession,
    admin_key: str,
    start_worker: StartWorker,
) -> None:
    # given a 300-contact campaign, watched over SSE
    campaign_id = await seed_campaign(session, 300)
    variables = {"id": str(campaign_id)}
    worker = await start_worker(whatsapp_rate_per_second=200, dispatch_batch_size=50)
    async with stream(server, admin_key, PROGRESS, variables) as sse:
        assert sse.response.status_code == 200
        assert sse.response.headers["content-type"] == SSE
        first = await sse.event()

        # when the campaign starts
        assert (await gql.ok(START, variables))["startCampaign"]["__typename"] == (
            "StartCampaignSuccess"
        )
        events = await sse.events_until_complete()
    worker.stop()

    # then the current state came at once, then counts going up, then the final state
    assert first[0] == "next"
    assert first[1]["data"]["campaignProgress"]["status"] == "DRAFT"
    progress = [e["data"]["campaignProgress"] for e in events]
    assert progress[-1] == {
        "status": "COMPLETED",
        "stats": {"total": 300, "pending": 0, "sent": 300, "failed": 0},
    }
    sent = [p["stats"]["sent"] for p in progress]
    assert sent == sorted(sent)
    assert await status_counts(session, campaign_id) == {"sent": 300}


async def test_a_subscription_sent_as_a_get_streams_too(
    server: Server, session: AsyncSession, admin_key: str
) -> None:
    # given
    campaign_id = await seed_campaign(session, 2)
    # when
    async with stream(server, admin_key, PROGRESS, {"id": str(campaign_id)}, method="GET") as sse:
        event = await sse.event()
    # then
    assert event[0] == "next"
    assert event[1]["data"]["campaignProgress"]["status"] == "DRAFT"


async def test_a_query_or_a_mutation_over_sse_is_one_event_then_complete(
    server: Server, admin_key: str
) -> None:
    # when
    async with stream(server, admin_key, "{ contacts { totalCount } }") as sse:
        query = await sse.events_until_complete()
    mutation = 'mutation { createCategory(input: {name: "vip"}) { __typename } }'
    async with stream(server, admin_key, mutation) as sse:
        created = await sse.events_until_complete()
    # then
    assert [e["data"] for e in query] == [{"contacts": {"totalCount": 0}}]
    assert [e["data"]["createCategory"]["__typename"] for e in created] == ["CreateCategorySuccess"]


@pytest.mark.parametrize("key", [None, "hk_not-a-real-key"])
async def test_a_subscription_without_a_valid_key_is_refused_with_401(
    server: Server, session: AsyncSession, key: str | None
) -> None:
    # given
    campaign_id = await seed_campaign(session, 1)
    # when
    async with stream(server, key, PROGRESS, {"id": str(campaign_id)}) as sse:
        await sse.response.aread()
    # then
    response = sse.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/graphql-response+json; charset=utf-8"
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["UNAUTHENTICATED"]
    assert "data" not in response.json()


@pytest.mark.parametrize(
    ("query", "code"),
    [
        pytest.param("subscription { campaignProgress(id: ", "PARSE_FAILED", id="parse"),
        pytest.param("subscription { nothing }", "VALIDATION_FAILED", id="validation"),
        pytest.param(
            "subscription { campaignProgress(id: 1) { a: status b: status c: status } } "
            "query Q { version }",
            "OPERATION_NOT_FOUND",
            id="operation",
        ),
    ],
)
async def test_the_documents_own_errors_are_the_streams_one_event(
    server: Server, query: str, code: str
) -> None:
    # when: without a key, which is never looked up for a document that does not validate
    async with stream(server, None, query) as sse:
        events = await sse.events_until_complete()
    # then: as graphql-sse asks, an accepted stream with the errors, then complete
    assert sse.response.status_code == 200
    assert [[e["extensions"]["code"] for e in event["errors"]] for event in events] == [[code]]
    assert "data" not in events[0]


async def test_refusals_of_https_own_kind_keep_their_status(
    settings: Settings, admin_key: str
) -> None:
    mutation = 'mutation { createCategory(input: {name: "x"}) { __typename } }'
    with serve(settings.model_copy(update={"rate_limit_requests": 1})) as limited:
        # when: a mutation over GET (refused before the rate limit counts it)
        async with stream(limited, admin_key, mutation, method="GET") as sse:
            await sse.response.aread()
        over_get = sse.response
        # and one request more than the rate limit allows
        statuses = []
        for _ in range(2):
            async with stream(limited, admin_key, "{ version }") as sse:
                await sse.response.aread()
            statuses.append(sse.response.status_code)
        limited_response = sse.response
    # then
    assert over_get.status_code == 405
    assert over_get.headers["allow"] == "POST"
    assert [e["extensions"]["code"] for e in over_get.json()["errors"]] == ["METHOD_NOT_ALLOWED"]
    assert statuses == [200, 429]
    assert int(limited_response.headers["retry-after"]) >= 1
    assert [e["extensions"]["code"] for e in limited_response.json()["errors"]] == ["RATE_LIMITED"]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_single_connection_modes_requests_are_refused_naming_the_mode_to_use(
    server: Server, admin_key: str, method: str
) -> None:
    # given graphql-sse's client in single connection mode: PUT reserves, DELETE stops
    headers = {"Authorization": f"Bearer {admin_key}", "Accept": "text/plain"}
    # when
    async with httpx.AsyncClient(base_url=server.url) as http:
        response = await http.request(method, "/graphql", headers=headers)
    # then
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert "without `singleConnection`" in error["message"]


# -- Caps, disconnects, shared streams, revocation -------------------------------------------------


async def test_the_key_cap_is_an_error_event_and_a_disconnect_frees_its_slot(
    settings: Settings, session: AsyncSession
) -> None:
    # given a server allowing 2 subscriptions per key, both held over SSE
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 1)
    variables = {"id": str(campaign_id)}
    with serve(settings.model_copy(update={"live_max_subscriptions_per_key": 2})) as capped:
        async with AsyncExitStack() as held:
            streams = [
                await held.enter_async_context(stream(capped, viewer, PROGRESS, variables))
                for _ in range(2)
            ]
            for sse in streams:
                assert (await sse.event())[0] == "next"
            assert await held_slots(settings, viewer, session) == 2

            # when a third is asked for
            async with stream(capped, viewer, PROGRESS, variables) as sse:
                refused = await sse.events_until_complete()

        # and both clients went away
        async def all_given_back() -> bool:
            return await held_slots(settings, viewer, session) == 0

        await eventually(all_given_back, "the slots were never given back")
        async with stream(capped, viewer, PROGRESS, variables) as sse:
            again = await sse.event()

    # then the third was an error event, and once freed a slot is granted again
    assert [[e["extensions"]["code"] for e in event["errors"]] for event in refused] == [
        ["SUBSCRIPTION_LIMIT"]
    ]
    assert again[0] == "next"
    assert "errors" not in again[1]


async def test_sse_and_websocket_subscribers_share_one_stream(
    server: Server, session: AsyncSession, admin_key: str
) -> None:
    # given one subscriber over WebSocket
    campaign_id = await seed_campaign(session, 1)
    variables = {"id": str(campaign_id)}
    async with gql_socket(server.url) as socket:
        assert (await socket.init(admin_key))["type"] == "connection_ack"
        await socket.subscribe("p", PROGRESS, variables)
        over_ws = await asyncio.wait_for(socket.receive(), WAIT)
        # when the same key subscribes to the same document over SSE
        async with stream(server, admin_key, PROGRESS, variables) as sse:
            over_sse = await sse.event()
    # then both got the same event
    assert over_sse == ("next", over_ws["payload"])


async def test_revoking_the_key_ends_its_sse_streams(
    server: Server, gql: GqlClient, session: AsyncSession, settings: Settings
) -> None:
    # given a viewer's subscription over SSE
    viewer = await create_api_key(settings, "viewer")
    campaign_id = await seed_campaign(session, 1)
    async with stream(server, viewer, PROGRESS, {"id": str(campaign_id)}) as sse:
        assert (await sse.event())[0] == "next"
        # when the key is revoked
        revoke = "mutation Revoke($id: ID!) { revokeApiKey(id: $id) { __typename } }"
        await gql.ok(revoke, {"id": str(await key_id(session, viewer))})
        # then the stream ends
        rest = await asyncio.wait_for(sse.rest(), WAIT)
    assert "event: next" not in rest

    async def given_back() -> bool:
        return await held_slots(settings, viewer, session) == 0

    await eventually(given_back, "the revoked stream's slot was never given back")


async def test_a_server_shutting_down_ends_its_streams(
    settings: Settings, session: AsyncSession, admin_key: str
) -> None:
    # given a subscription open over SSE
    campaign_id = await seed_campaign(session, 1)
    async with AsyncExitStack() as held:
        with serve(settings) as stopping:
            sse = await held.enter_async_context(
                stream(stopping, admin_key, PROGRESS, {"id": str(campaign_id)})
            )
            assert (await sse.event())[0] == "next"
            # when the server shuts down (it waits for its responses to finish)
            started = time.monotonic()
        stopped_in = time.monotonic() - started
        # then the stream ended, and the server did not wait for it
        rest = await asyncio.wait_for(sse.rest(), WAIT)
    assert "event: next" not in rest
    assert stopped_in < 5, stopped_in


async def test_open_streams_do_not_count_against_load_shedding(
    settings: Settings, session: AsyncSession, admin_key: str
) -> None:
    # given a server working on at most 2 requests at once, and 4 streams open on it
    campaign_id = await seed_campaign(session, 1)
    variables = {"id": str(campaign_id)}
    with serve(settings.model_copy(update={"max_in_flight": 2})) as shedding:
        async with AsyncExitStack() as held:
            streams = [
                await held.enter_async_context(stream(shedding, admin_key, PROGRESS, variables))
                for _ in range(4)
            ]
            for sse in streams:
                assert (await sse.event())[0] == "next"
            # when an ordinary query comes
            async with httpx.AsyncClient(base_url=shedding.url, timeout=WAIT) as http:
                response = await http.post(
                    "/graphql",
                    json={"query": "{ contacts { totalCount } }"},
                    headers={"Authorization": f"Bearer {admin_key}"},
                )
            open_subscriptions = await held_slots(settings, admin_key, session)
    # then it is answered, with the 4 streams still open
    assert response.status_code == 200
    assert response.json()["data"] == {"contacts": {"totalCount": 1}}
    assert open_subscriptions == 4


# -- Multipart (Apollo) and JSON-only clients -----------------------------------------------------


@pytest.mark.parametrize("accept", [MULTIPART, APOLLO])
async def test_campaign_progress_as_apollos_multipart_subscription(
    server: Server, session: AsyncSession, admin_key: str, accept: str
) -> None:
    # given
    campaign_id = await seed_campaign(session, 2)
    # when
    async with stream(server, admin_key, PROGRESS, {"id": str(campaign_id)}, accept=accept) as mp:
        heartbeat = await mp.part()
        first = await mp.part()
    # then: a heartbeat at once, then the current state as the part's payload
    content_type = mp.response.headers["content-type"]
    assert content_type.startswith("multipart/mixed;boundary=graphql;subscriptionSpec=1.0")
    assert heartbeat == {}
    assert list(first) == ["payload"]
    assert first["payload"]["data"]["campaignProgress"]["status"] == "DRAFT"


async def test_a_client_accepting_json_too_gets_a_documents_errors_as_json(
    server: Server, admin_key: str
) -> None:
    # when: Apollo's `Accept`, a subscription that does not validate
    async with stream(server, admin_key, "subscription { nothing }", accept=APOLLO) as answer:
        await answer.response.aread()
    # then: refused as any request of that client, at the same step
    assert answer.response.status_code == 400
    assert answer.response.headers["content-type"].startswith("application/graphql-response+json")
    assert [e["extensions"]["code"] for e in answer.response.json()["errors"]] == [
        "VALIDATION_FAILED"
    ]


async def test_a_query_from_a_client_accepting_json_too_is_answered_as_json(
    server: Server, admin_key: str
) -> None:
    # when
    async with stream(server, admin_key, "{ version }", accept=APOLLO) as answer:
        await answer.response.aread()
    # then
    assert answer.response.status_code == 200
    assert answer.response.headers["content-type"].startswith("application/graphql-response+json")
    assert set(answer.response.json()["data"]) == {"version"}


async def test_a_subscription_accepting_only_json_names_the_transports(
    server: Server, admin_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    # when
    with caplog.at_level(logging.WARNING):
        async with stream(
            server, admin_key, PROGRESS, {"id": "1"}, accept="application/json"
        ) as answer:
            await answer.response.aread()
    # then a client error that says where subscriptions are served, and nothing logged
    assert answer.response.status_code == 400
    [error] = answer.response.json()["errors"]
    assert error["extensions"]["code"] == "SUBSCRIPTION_OVER_HTTP"
    for transport in ("graphql-transport-ws", "text/event-stream", "multipart/mixed"):
        assert transport in error["message"]
    assert [r.getMessage() for r in caplog.records] == []
