"""The fixed cost of a request: no auth SQL on a hot key, no pre-ping, no BEGIN/COMMIT on
reads, one Redis round trip for auth and rate limiting, limits measured once per shape.

Each saving keeps its guarantee: a revoked key is refused within the stated bound, killed
connections cost no failed request, and a cached measure still depends on the variables.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis
from sqlalchemy import event

from app.api_keys.auth import EPOCH_KEY
from app.cache import total_round_trips
from app.config import Settings
from app.db.engine import total_statements
from tests.conftest import Server, create_api_key, serve

pytestmark = pytest.mark.asyncio

CAMPAIGN = '{ campaign(id: "1") { id name } }'
CAMPAIGNS = "{ campaigns { nodes { id name } } }"
CREATE_CATEGORY = """
mutation { createCategory(input: { name: "budget" }) { __typename } }
"""
CONTACTS_PAGE = "query ($n: Int) { contacts(first: $n) { nodes { id name phone } } }"
AUTH_TTL_S = 1.0


@pytest.fixture
def budget_server(settings: Settings) -> Iterator[Server]:
    """Rate limiting off, a short auth cache, a small cost limit: each test reads one knob."""
    update = {"rate_limit_requests": 0, "auth_cache_seconds": AUTH_TTL_S, "query_max_cost": 100}
    with serve(settings.model_copy(update=update)) as running:
        yield running


@pytest.fixture
def limited_server(settings: Settings) -> Iterator[Server]:
    with serve(settings.model_copy(update={"rate_limit_requests": 1000})) as running:
        yield running


async def _post(server: Server, key: str, query: str, variables: Any = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _codes(body: dict[str, Any]) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors") or []]


async def _sql(settings: Settings, statement: str) -> None:
    conn = await asyncpg.connect(settings.async_database_url.replace("+asyncpg", ""))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def test_a_hot_key_costs_no_sql(budget_server: Server, settings: Settings) -> None:
    # given
    key = await create_api_key(settings, "viewer")
    await _post(budget_server, key, CAMPAIGN)  # looks the key up
    # when
    before = total_statements()
    body = await _post(budget_server, key, CAMPAIGN)
    # then: only the campaign's own statement
    assert body["data"] == {"campaign": None}
    assert total_statements() - before == 1


async def test_a_key_revoked_behind_the_apis_back_is_refused_within_the_bound(
    budget_server: Server, settings: Settings
) -> None:
    # given
    key = await create_api_key(settings, "viewer", name="doomed")
    assert _codes(await _post(budget_server, key, CAMPAIGN)) == []
    # when: revoked in the database, with no announcement at all
    await _sql(settings, "UPDATE api_keys SET revoked_at = now() WHERE name = 'doomed'")
    revoked_at = time.monotonic()
    still = await _post(budget_server, key, CAMPAIGN)
    await asyncio.sleep(AUTH_TTL_S + 0.2)
    after = await _post(budget_server, key, CAMPAIGN)
    # then: trusted from the cache at first, refused once the bound has passed
    if time.monotonic() - revoked_at < AUTH_TTL_S:
        assert _codes(still) == []
    assert _codes(after) == ["UNAUTHENTICATED"]
    assert after["data"] == {"campaign": None}


async def test_a_revocation_announced_by_another_process_is_refused_at_once(
    limited_server: Server, settings: Settings
) -> None:
    # given: a key this process has just looked up
    key = await create_api_key(settings, "viewer", name="announced")
    assert _codes(await _post(limited_server, key, CAMPAIGN)) == []
    # when: another process revokes it and bumps the epoch, as revokeApiKey does
    await _sql(settings, "UPDATE api_keys SET revoked_at = now() WHERE name = 'announced'")
    redis.Redis.from_url(settings.redis_url).incr(EPOCH_KEY)  # type: ignore[arg-type]
    body = await _post(limited_server, key, CAMPAIGN)
    # then
    assert _codes(body) == ["UNAUTHENTICATED"]


async def test_auth_and_rate_limiting_share_one_redis_round_trip(
    limited_server: Server, settings: Settings
) -> None:
    # given
    key = await create_api_key(settings, "viewer")
    await _post(limited_server, key, CAMPAIGN)
    client = redis.Redis.from_url(settings.redis_url)  # type: ignore[arg-type]
    buckets = [b for b in client.scan_iter("ratelimit:key:*")]
    recorded = client.zcard(buckets[0]) if buckets else 0
    # when
    before = total_round_trips()
    body = await _post(limited_server, key, CAMPAIGN)
    trips = total_round_trips() - before
    # then: the limiter's script is the request's only Redis call (it may have been
    # skipped if Redis was slower than its 50 ms timeout on a loaded machine, never more)
    assert _codes(body) == []
    grew = sum(client.zcard(b) for b in client.scan_iter("ratelimit:key:*")) - recorded
    assert trips == grew
    assert trips <= 1


async def test_reads_send_no_begin_or_commit_and_writes_do(
    budget_server: Server, settings: Settings
) -> None:
    # given: what the server's connections send through asyncpg's simple-query path:
    # BEGIN and COMMIT (prepared statements are not logged)
    key = await create_api_key(settings, "editor")
    sent: list[str] = []
    engine = budget_server.app.state.runtime.engine

    def log_queries(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection._connection.add_query_logger(lambda q: sent.append(q.query))

    event.listen(engine.sync_engine, "connect", log_queries)
    await engine.dispose()  # new connections from here on, each with the logger
    # when
    await _post(budget_server, key, CAMPAIGN)
    reads = [q.split()[0].upper().rstrip(";") for q in sent]
    sent.clear()
    body = await _post(budget_server, key, CREATE_CATEGORY)
    writes = [q.split()[0].upper().rstrip(";") for q in sent]
    # then
    assert body["data"]["createCategory"]["__typename"] == "CreateCategorySuccess"
    assert "BEGIN" not in reads
    assert "COMMIT" not in reads
    assert writes[0].startswith("BEGIN")
    assert writes[-1] == "COMMIT"


async def test_killed_connections_cost_no_failed_request(
    budget_server: Server, settings: Settings
) -> None:
    # given: a pool holding several connections
    key = await create_api_key(settings, "editor")
    await asyncio.gather(*(_post(budget_server, key, CAMPAIGNS) for _ in range(6)))
    database = settings.async_database_url.rsplit("/", 1)[1]
    # when: PostgreSQL ends every one of them
    await _sql(
        settings,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{database}' AND application_name = 'herald'",
    )
    answers = await asyncio.gather(
        *(_post(budget_server, key, CAMPAIGNS) for _ in range(6)),
        _post(budget_server, key, CREATE_CATEGORY),
    )
    # then
    assert [a.get("errors") for a in answers] == [None] * 7
    assert answers[-1]["data"]["createCategory"]["__typename"] == "CreateCategorySuccess"


async def test_a_measured_document_is_measured_again_for_other_variables(
    budget_server: Server, settings: Settings
) -> None:
    # given: the cost of this page grows with $n; the limit is 100
    key = await create_api_key(settings, "viewer")
    # when
    small = await _post(budget_server, key, CONTACTS_PAGE, {"n": 5})
    large = await _post(budget_server, key, CONTACTS_PAGE, {"n": 100})
    small_again = await _post(budget_server, key, CONTACTS_PAGE, {"n": 5})
    # then
    assert _codes(small) == []
    assert _codes(small_again) == []
    assert _codes(large) == ["QUERY_TOO_COMPLEX"]
