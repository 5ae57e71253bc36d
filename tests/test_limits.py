"""Query limits over real HTTP: every bomb gets a clear error fast and the server stays up."""

from __future__ import annotations

import asyncio
import gc
import secrets
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.api_keys.service import generate_key
from app.config import Env, LogFormat, Settings
from app.db.engine import total_statements
from schema.limits import LimitError, known_refusal
from schema.limits.refusals import remember_refusal
from tests.conftest import GqlClient, GqlResult, Server, serve

pytestmark = pytest.mark.asyncio

# A refusal must not do the refused work, which costs seconds to forever (validating 700
# repeats 1 s+, 2^30 fragment paths, a million message nodes, a 100,000-field answer).
# One second, on the median of three sends, tells the two apart even with every core busy;
# a refusal takes milliseconds. Speed itself is measured in bench/, not here.
FAST_S = 1.0
NORMAL = "{ contacts(first: 5) { totalCount nodes { id phone } } version }"
CREATE_CONTACT = """
mutation { createContact(input: {phone: "+33612345678", name: "Ada"}) {
  __typename ... on CreateContactSuccess { contact { databaseId } } } }
"""
RENAME = """
mutation($id: ID!) { updateContact(id: $id, input: {name: "Grace"}) { __typename } }
"""
PAGE_BOMB = """
query($n: Int!) {
  categories(first: $n) { nodes { contacts(first: $n) { nodes {
    messages(first: $n) { nodes { id status } } } } } }
}
"""
# The same bomb with the page size as the variable's declared default.
DEFAULT_PAGE_BOMB = (
    "query C($n: Int = 100) { categories(first: $n) { nodes { contacts(first: $n) { nodes {"
    " messages(first: $n) { totalCount } } } } } }"
)


def code_of(result: GqlResult) -> str:
    assert result.errors is not None
    assert len(result.errors) == 1, result.errors
    return str(result.errors[0]["extensions"]["code"])


async def timed(
    gql: GqlClient, query: str, variables: dict[str, Any] | None = None
) -> tuple[GqlResult, float]:
    """The answer and its median time over three sends: a scheduler hiccup on a shared
    machine does not decide, a slow path still does."""
    await gql("{ version }")  # the connection is open: time the answer, not the handshake
    times = []
    for _ in range(3):
        started = time.perf_counter()
        result = await gql(query, variables)
        times.append(time.perf_counter() - started)
    return result, sorted(times)[1]


async def still_responsive(gql: GqlClient) -> None:
    """The server still answers a normal request (the client's timeout bounds the wait)."""
    result = await gql(NORMAL)
    assert result.errors is None


def deep_query(repeats: int) -> str:
    """contacts → nodes → categories, `repeats` times, then `id`: depth 3 x repeats + 1."""
    return (
        "{ "
        + "contacts(first: 1) { nodes { categories { " * repeats
        + "id"
        + " } } }" * repeats
        + " }"
    )


# --- shape limits ---


async def test_deep_query_is_refused_fast(gql: GqlClient) -> None:
    # when
    result, elapsed = await timed(gql, deep_query(4))
    # then
    assert code_of(result) == "QUERY_TOO_DEEP"
    assert result.data is None
    assert result.sql == 0
    assert elapsed < FAST_S
    await still_responsive(gql)


async def test_depth_at_the_limit_runs(gql: GqlClient, settings: Settings) -> None:
    result = await gql(deep_query(3))  # depth 10
    assert result.errors is None
    assert settings.query_max_depth == 10


async def test_alias_bomb_is_refused_fast(gql: GqlClient) -> None:
    # given: 300 aliases of a public field (900 tokens: under the token limit)
    query = "{ " + " ".join(f"a{i}: version" for i in range(300)) + " }"
    # when
    result, elapsed = await timed(gql, query)
    # then
    assert code_of(result) == "TOO_MANY_ALIASES"
    assert result.data is None
    assert elapsed < FAST_S
    await still_responsive(gql)


async def test_page_size_bomb_is_refused_before_any_sql(gql: GqlClient) -> None:
    # when: 100 x 100 x 100 messages asked for through three nested connections
    result, elapsed = await timed(gql, PAGE_BOMB, {"n": 100})
    # then
    assert code_of(result) == "QUERY_TOO_COMPLEX"
    assert result.data is None
    assert result.sql == 0
    assert elapsed < FAST_S
    await still_responsive(gql)


@pytest.mark.parametrize("variables", [{"n": 100}, {}])
async def test_a_declared_default_counts_like_a_value_sent(
    gql: GqlClient, variables: dict[str, Any]
) -> None:
    # when: $n sent as 100, or omitted and 100 by its declared default
    result = await gql(DEFAULT_PAGE_BOMB, variables)
    # then
    assert code_of(result) == "QUERY_TOO_COMPLEX"
    assert result.data is None
    assert result.sql == 0


async def test_an_explicit_null_counts_as_the_default_page_size(gql: GqlClient) -> None:
    # when: 20 x 20 x 20 (page_size_default at each level), within the limit
    result = await gql(DEFAULT_PAGE_BOMB, {"n": None})
    # then
    assert result.errors is None
    assert result.data == {"categories": {"nodes": []}}


async def test_the_same_shape_with_small_pages_runs(gql: GqlClient) -> None:
    result = await gql(PAGE_BOMB, {"n": 3})
    assert result.errors is None
    assert result.data == {"categories": {"nodes": []}}


async def test_default_page_size_counts_when_first_is_omitted(
    gql: GqlClient, settings: Settings
) -> None:
    # given: page_size_default (20) per level; 20^4 fields > the cost limit, 20^3 is not
    four = (
        "{ categories { nodes { contacts { nodes { messages { nodes {"
        " contact { messages { nodes { id } } } } } } } } } }"
    )
    three = "{ categories { nodes { contacts { nodes { messages { nodes { id } } } } } } }"
    assert settings.page_size_default == 20
    assert code_of(await gql(four)) == "QUERY_TOO_COMPLEX"
    assert (await gql(three)).errors is None


async def test_huge_document_is_refused_fast(gql: GqlClient) -> None:
    # given: 900 KB, under the body limit, but 100,000 tokens
    query = "{ " + "version " * 100_000 + "}"
    # when
    result, elapsed = await timed(gql, query)
    # then
    assert code_of(result) == "QUERY_TOO_LARGE"
    assert result.errors is not None
    assert "1000 tokens" in result.errors[0]["message"]
    assert elapsed < FAST_S
    await still_responsive(gql)


@pytest.mark.parametrize(
    "query",
    [
        # the same field over and over: standard validation compares every pair (1 s+)
        "{ contacts { " + "totalCount " * 700 + "} }",
        # repeats that multiply through nesting: contacts.nodes is asked for 100 times
        "{ " + ("contacts(first: 1) { " + "nodes { id } " * 10 + "} ") * 10 + "}",
    ],
)
async def test_repeated_fields_are_refused_before_validation(gql: GqlClient, query: str) -> None:
    result, elapsed = await timed(gql, query)
    assert code_of(result) == "TOO_MANY_REPEATS"
    assert elapsed < FAST_S
    await still_responsive(gql)


async def test_overlapping_fragments_are_fine(gql: GqlClient) -> None:
    query = """
    query { contacts(first: 2) { ...A ...B nodes { id } } }
    fragment A on ContactConnection { totalCount nodes { id phone } }
    fragment B on ContactConnection { nodes { id name } }
    """
    result = await gql(query)
    assert result.errors is None


async def test_fragment_fan_out_is_cheap(gql: GqlClient) -> None:
    """30 fragments each spreading the next twice: 2^30 paths, measured in linear time."""
    parts = ["query { ...F0 }"]
    parts += [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(30)]
    parts.append("fragment F30 on Query { version }")
    result, elapsed = await timed(gql, "\n".join(parts))
    assert code_of(result) == "TOO_MANY_REPEATS"  # `version`, 2^30 times
    assert elapsed < FAST_S
    await still_responsive(gql)


# --- HTTP-level limits ---


async def test_body_over_the_limit_is_413(http: httpx.AsyncClient, gql: GqlClient) -> None:
    body = b'{"query": "{ version }", "variables": {"pad": "' + b"x" * (1024 * 1024) + b'"}}'
    started = time.perf_counter()
    response = await http.post(
        "/graphql", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert time.perf_counter() - started < FAST_S  # refused from Content-Length, body unread
    await still_responsive(gql)


async def test_chunked_body_over_the_limit_is_413(http: httpx.AsyncClient, gql: GqlClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ version }", "variables": {"pad": "'
        for _ in range(20):
            yield b"x" * 64 * 1024
        yield b'"}}'

    response = await http.post(
        "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    await still_responsive(gql)


async def test_batched_requests_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.post("/graphql", json=[{"query": "{ version }"}] * 2)
    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "batched requests are not supported: send one operation per request",
                "extensions": {"code": "BATCHING_NOT_SUPPORTED"},
            }
        ]
    }


# --- timeout ---


@pytest.fixture
def slow_server(settings: Settings) -> Iterator[Server]:
    with serve(settings.model_copy(update={"query_timeout_s": 0.3})) as running:
        yield running


@pytest_asyncio.fixture
async def locked_contact(
    gql: GqlClient, settings: Settings
) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """A contact whose row another transaction holds locked until the test releases it."""
    data = await gql.ok(CREATE_CONTACT)
    contact_id = data["createContact"]["contact"]["databaseId"]
    conn = await asyncpg.connect(settings.async_database_url.replace("+asyncpg", ""))
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("SELECT 1 FROM contacts WHERE id = $1 FOR UPDATE", contact_id)
    try:
        yield str(contact_id), conn  # the numeric key: id arguments take it too
    finally:
        await transaction.rollback()
        await conn.close()


async def test_slow_operation_times_out_cleanly_and_writes_nothing(
    slow_server: Server,
    admin_key: str,
    locked_contact: tuple[str, asyncpg.Connection],
    session: AsyncSession,
) -> None:
    contact_id, conn = locked_contact
    async with httpx.AsyncClient(base_url=slow_server.url, timeout=10) as http:
        gql = GqlClient(http, admin_key)
        # when: the UPDATE waits for the lock past the 0.3 s limit
        result, elapsed = await timed(gql, RENAME, {"id": contact_id})
        # then
        assert code_of(result) == "TIMEOUT"
        assert result.data is None
        # waited the limit, then stopped: without it the request would hang on the lock
        # until the client's 10 s timeout, which fails the test by itself
        assert elapsed >= 0.3
        # and PostgreSQL was told to stop: no statement of Herald's still waits on the lock
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'herald' AND wait_event_type = 'Lock'"
        )
        assert waiting == 0
        await conn.execute("ROLLBACK")  # release the lock; the fixture's rollback is a no-op
        name = (
            await session.execute(
                text("SELECT name FROM contacts WHERE id = :id"), {"id": int(contact_id)}
            )
        ).scalar_one()
        assert name == "Ada"
        # the next requests succeed on the same pool
        for _ in range(3):
            assert (await gql(RENAME, {"id": contact_id})).errors is None


# --- load shedding ---

LOCK_WAITS = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name = 'herald' AND wait_event_type = 'Lock'"
)


@pytest.fixture
def narrow_server(settings: Settings) -> Iterator[Server]:
    with serve(settings.model_copy(update={"max_in_flight": 2})) as running:
        yield running


async def test_requests_past_the_in_flight_bound_are_shed_at_once(
    narrow_server: Server, admin_key: str, locked_contact: tuple[str, asyncpg.Connection]
) -> None:
    contact_id, conn = locked_contact
    async with httpx.AsyncClient(base_url=narrow_server.url, timeout=30) as http:
        gql = GqlClient(http, admin_key)
        # given: two requests in flight, waiting on a locked row
        waiting = [asyncio.create_task(gql(RENAME, {"id": contact_id})) for _ in range(2)]
        for _ in range(200):  # the statistics snapshot is per transaction: cleared each time
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            if await conn.fetchval(LOCK_WAITS) == 2:
                break
            await asyncio.sleep(0.05)

        # when: a third request, and the probes
        shed = await http.post("/graphql", json={"query": NORMAL}, headers=gql.auth_headers)
        health = await http.get("/healthz")

        # then: the request is refused without being worked on; the probes still answer
        assert shed.status_code == 503
        assert shed.headers["Retry-After"] == "1"
        assert shed.json()["errors"][0]["extensions"] == {"code": "OVERLOADED", "retryAfter": 1}
        assert health.status_code == 200
        await conn.execute("ROLLBACK")  # the two in flight finish, and room is made again
        assert [(await task).errors for task in waiting] == [None, None]
        assert (await gql(NORMAL)).errors is None


@pytest.fixture
def patient_server(settings: Settings) -> Iterator[Server]:
    """Queries may run two minutes: only their client's leaving stops them early."""
    with serve(settings.model_copy(update={"query_timeout_s": 120.0})) as running:
        yield running


async def test_a_query_whose_client_goes_away_stops_at_once(
    patient_server: Server, admin_key: str, settings: Settings
) -> None:
    server = patient_server
    # given: the contacts table locked, so a query on it waits
    conn = await asyncpg.connect(settings.async_database_url.replace("+asyncpg", ""))
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
    body = orjson.dumps({"query": NORMAL})
    host, port = server.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s"
        % (admin_key.encode(), len(body), body)
    )
    await writer.drain()
    waiting = 0
    for _ in range(200):
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        if (waiting := await conn.fetchval(LOCK_WAITS)) == 1:
            break
        await asyncio.sleep(0.05)
    assert waiting == 1

    # when: the client goes away
    writer.close()
    await writer.wait_closed()

    # then: its statement is cancelled on the server, the lock still held (well within the
    # two minutes it would otherwise wait)
    for _ in range(600):
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        if (waiting := await conn.fetchval(LOCK_WAITS)) == 0:
            break
        await asyncio.sleep(0.05)
    await transaction.rollback()
    await conn.close()
    assert waiting == 0
    async with httpx.AsyncClient(base_url=server.url) as http:  # and it answers the next one
        assert (await GqlClient(http, admin_key)(NORMAL)).errors is None


# --- rate limiting ---


@pytest.fixture
def limited_server(settings: Settings) -> Iterator[Server]:
    update = {"rate_limit_requests": 3, "rate_limit_window_s": 1.0}
    with serve(settings.model_copy(update=update)) as running:
        yield running


async def test_rate_limit_per_key_with_retry_after(
    limited_server: Server, admin_key: str, settings: Settings
) -> None:
    from tests.conftest import create_api_key

    other = await create_api_key(settings, "viewer")
    async with httpx.AsyncClient(base_url=limited_server.url) as http:
        gql = GqlClient(http, admin_key)
        # given: the window's three requests
        for _ in range(3):
            assert (await gql(NORMAL)).errors is None
        # when
        response = await http.post("/graphql", json={"query": NORMAL}, headers=gql.auth_headers)
        # then
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        body = response.json()
        assert "data" not in body  # a request error: nothing ran
        assert body["errors"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 1}
        # another key has its own window
        assert (await gql.as_key(other)(NORMAL)).errors is None
        # and after Retry-After the first key gets through again
        await asyncio.sleep(1.05)
        assert (await gql(NORMAL)).errors is None


async def test_anonymous_callers_are_limited_per_address(limited_server: Server) -> None:
    async with httpx.AsyncClient(base_url=limited_server.url) as http:
        statuses = [
            (await http.post("/graphql", json={"query": "{ version }"})).status_code
            for _ in range(4)
        ]
    assert statuses == [200, 200, 200, 429]


async def test_a_used_window_is_refused_without_a_redis_round_trip(
    limited_server: Server, settings: Settings
) -> None:
    # given: an address that used its window and was refused once
    assert settings.redis_url is not None
    redis_client = redis.Redis.from_url(settings.redis_url)
    async with httpx.AsyncClient(base_url=limited_server.url) as http:

        async def post() -> int:
            return (await http.post("/graphql", json={"query": "{ version }"})).status_code

        assert [await post() for _ in range(4)] == [200, 200, 200, 429]
        scripts_before = _script_calls(redis_client)

        # when: it keeps sending within the window
        refused = [await post() for _ in range(5)]
        scripts_during = _script_calls(redis_client) - scripts_before

        # then: refused from memory; once the window frees, Redis decides again
        await asyncio.sleep(1.05)
        again = await post()
    assert refused == [429] * 5
    assert scripts_during == 0
    assert again == 200
    assert _script_calls(redis_client) > scripts_before


async def test_a_used_window_refuses_before_the_document_is_parsed(
    limited_server: Server,
) -> None:
    # given: an address that used its window and was refused once
    async with httpx.AsyncClient(base_url=limited_server.url) as http:

        async def post(query: str) -> httpx.Response:
            return await http.post("/graphql", json={"query": query})

        assert [(await post("{ version }")).status_code for _ in range(4)] == [
            200, 200, 200, 429,
        ]  # fmt: skip
        # when: it sends a document never seen before, one that does not even parse
        unparsed = "{ version } " + secrets.token_hex(8) + " {"
        refused = await post(unparsed)
    # then: refused by the rate limit, not by the parser (the next step): it never ran
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def _script_calls(client: redis.Redis) -> int:
    """Lua scripts Redis has run (the rate limit is one per request that reaches it)."""
    stats = client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


async def test_a_new_bogus_token_per_request_gains_no_window(limited_server: Server) -> None:
    # given: tokens that are no key, malformed and well-formed, a new one for each request
    tokens = ["not-a-key", "hk_short", *(generate_key() for _ in range(4))]

    # when
    async with httpx.AsyncClient(base_url=limited_server.url) as http:
        statuses = [
            (
                await http.post(
                    "/graphql",
                    json={"query": "{ version }"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            ).status_code
            for token in tokens
        ]

    # then: they all count against the client's address
    assert statuses == [200, 200, 200, 429, 429, 429]


async def test_a_key_found_valid_keeps_its_own_window_past_the_lookup_cache(
    settings: Settings, admin_key: str
) -> None:
    # given: a window of 3, and no lookup remembered from one request to the next
    update = {"rate_limit_requests": 3, "rate_limit_window_s": 30.0, "auth_cache_seconds": 0}
    with serve(settings.model_copy(update=update)) as server:
        async with httpx.AsyncClient(base_url=server.url) as http:
            gql = GqlClient(http, admin_key)
            # when: the key's three requests, each looked up again
            keyed = [(await gql(NORMAL)).status for _ in range(3)]
            # then: only its first, before it was known valid, counted for the address too
            anonymous = await http.post("/graphql", json={"query": "{ version }"})
    assert keyed == [200, 200, 200]
    assert anonymous.status_code == 200


async def test_a_malformed_token_costs_no_lookup(gql: GqlClient) -> None:
    # given
    before = total_statements()

    # when: a protected field asks for the caller
    results = [await gql.as_key(f"hk_{n}")(NORMAL) for n in range(5)]

    # then: refused without asking PostgreSQL
    assert [r.errors[0]["extensions"]["code"] for r in results if r.errors] == [
        "UNAUTHENTICATED"
    ] * 5
    assert total_statements() == before


# --- production defaults: masking, introspection, GraphiQL ---


@pytest.fixture
def prod_server(settings: Settings) -> Iterator[Server]:
    update = {"env": Env.PROD, "log_format": LogFormat.TEXT, "graphiql": None}
    with serve(settings.model_copy(update=update)) as running:
        yield running


async def test_prod_turns_off_introspection_and_graphiql(prod_server: Server) -> None:
    async with httpx.AsyncClient(base_url=prod_server.url) as http:
        introspection = await http.post(
            "/graphql", json={"query": "{ __schema { types { name } } }"}
        )
        body = introspection.json()
        assert "data" not in body
        assert body["errors"][0]["extensions"]["code"] == "VALIDATION_FAILED"
        assert "introspection" in body["errors"][0]["message"]
        page = await http.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 404
        # and no field-name suggestions leak the schema
        typo = (await http.post("/graphql", json={"query": "{ contactz { id } }"})).json()
        assert "Did you mean" not in typo["errors"][0]["message"]


async def test_dev_keeps_introspection(gql: GqlClient) -> None:
    data = await gql.ok("{ __schema { queryType { name } } }")
    assert data == {"__schema": {"queryType": {"name": "Query"}}}


async def test_a_remembered_refusal_keeps_nothing_of_its_request() -> None:
    """Once raised, an error holds its traceback's frames (the request, its parse tree):
    remembering one must not keep them alive."""

    class Request:
        pass

    def refuse(request: Request) -> None:
        raise LimitError("too many repeats", "TOO_MANY_REPEATS")

    request = Request()
    alive = weakref.ref(request)
    query = "{ version } # " + uuid.uuid4().hex
    try:
        refuse(request)
    except LimitError as error:
        remember_refusal(query, None, None, error)
    del request
    gc.collect()
    assert alive() is None
    known = known_refusal(query, None, None)
    assert known is not None
    assert known.extensions == {"code": "TOO_MANY_REPEATS"}
