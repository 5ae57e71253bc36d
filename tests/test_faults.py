"""Faults with real servers: PostgreSQL connections killed or restarted, Redis gone, and a
mutation failing half-way. Each time the affected request gets a clean error, nothing is
half-written, and Herald recovers without a restart."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Env, LogFormat, Settings, load_settings
from app.db import migrate
from app.db.reads import rows
from app.process.runtime import Runtime
from bench.servers import OwnPostgres, OwnRedis
from tests.conftest import GqlClient, GqlResult, Server, create_api_key, serve

pytestmark = pytest.mark.asyncio

CONTACTS = "{ contacts(first: 5) { totalCount nodes { id name } } }"
# Not cached, and the key is cached by then: only PostgreSQL can answer it.
CAMPAIGN = '{ campaign(id: "1") { id } }'
CREATE_CONTACT = """
mutation { createContact(input: {phone: "+33612345678", name: "Ada"}) {
  __typename ... on CreateContactSuccess { contact { id databaseId } } } }
"""
RENAME = """
mutation($id: ID!) { updateContact(id: $id, input: {name: "Grace"}) { __typename } }
"""
IMPORT = """
mutation($rows: [ContactImportRow!]!, $categories: [ID!]!) {
  importContacts(input: {rows: $rows, categoryIds: $categories}) {
    __typename ... on ImportContactsSuccess { created errors { index reason } }
  }
}
"""
CREATE_CATEGORY = """
mutation { createCategory(input: {name: "VIP"}) {
  __typename ... on CreateCategorySuccess { category { id } } } }
"""
REFUSE_NAME = """
CREATE FUNCTION refuse_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.name = 'Refused' THEN
    RAISE EXCEPTION 'name refused' USING ERRCODE = 'string_data_right_truncation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_name BEFORE INSERT ON contacts FOR EACH ROW EXECUTE FUNCTION refuse_name();
"""
ALLOW_NAME = "DROP TRIGGER refuse_name ON contacts; DROP FUNCTION refuse_name();"
WAITING_ON_LOCK = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND application_name = 'herald' AND wait_event_type = 'Lock'
"""


def assert_masked(result: GqlResult) -> str:
    """A clean, masked error: the stable message and an id, no internals."""
    assert result.status == 200
    assert result.errors is not None
    assert len(result.errors) == 1
    error = result.errors[0]
    assert error["message"] == "Internal server error"
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert set(error["extensions"]) == {"code", "errorId"}
    return str(error["extensions"]["errorId"])


def logged_with_stack(caplog: pytest.LogCaptureFixture, error_id: str) -> logging.LogRecord:
    records = [
        r for r in caplog.records if r.name == "herald.errors" and error_id in r.getMessage()
    ]
    assert len(records) == 1
    assert records[0].exc_info is not None
    return records[0]


def prod(settings: Settings, **changes: Any) -> Settings:
    """Production defaults (masking on), text logs so the test output stays readable."""
    return settings.model_copy(update={"env": Env.PROD, "log_format": LogFormat.TEXT, **changes})


@pytest.fixture
def prod_server(settings: Settings) -> Iterator[Server]:
    with serve(prod(settings)) as running:
        yield running


@pytest_asyncio.fixture
async def prod_gql(prod_server: Server, admin_key: str) -> AsyncIterator[GqlClient]:
    async with httpx.AsyncClient(base_url=prod_server.url, timeout=10) as http:
        yield GqlClient(http, admin_key)


@pytest_asyncio.fixture
async def pg(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test database (never the server's other databases)."""
    conn = await asyncpg.connect(settings.async_database_url.replace("+asyncpg", ""))
    yield conn
    await conn.close()


# --- PostgreSQL connection killed ---


async def test_connection_killed_mid_request_gets_a_clean_error_then_recovers(
    prod_gql: GqlClient,
    pg: asyncpg.Connection,
    session: AsyncSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: a request blocked on a row lock the test holds
    contact = (await prod_gql.ok(CREATE_CONTACT))["createContact"]["contact"]
    contact_id, key = contact["id"], contact["databaseId"]
    lock = pg.transaction()
    await lock.start()
    await pg.execute("SELECT 1 FROM contacts WHERE id = $1 FOR UPDATE", key)
    pending = asyncio.create_task(prod_gql(RENAME, {"id": contact_id}))
    deadline = time.monotonic() + 5
    while not (pids := await pg.fetch(WAITING_ON_LOCK)):
        assert time.monotonic() < deadline, "the request never reached PostgreSQL"
        await asyncio.sleep(0.01)
    # when: its backend is killed mid-statement
    assert len(pids) == 1
    await pg.execute("SELECT pg_terminate_backend($1)", pids[0]["pid"])
    result = await asyncio.wait_for(pending, 5)
    await lock.rollback()
    # then: a masked error whose id leads to the stack in the log
    error_id = assert_masked(result)
    assert result.data is None
    record = logged_with_stack(caplog, error_id)
    assert record.exc_info is not None
    assert record.exc_info[1] is not None
    # the next requests succeed, and the killed one wrote nothing
    for _ in range(5):
        assert (await prod_gql(CONTACTS)).errors is None
    name = (
        await session.execute(text("SELECT name FROM contacts WHERE id = :id"), {"id": key})
    ).scalar_one()
    assert name == "Ada"
    assert (await prod_gql(RENAME, {"id": contact_id})).errors is None


async def test_idle_connections_killed_between_requests_are_replaced(
    prod_gql: GqlClient, pg: asyncpg.Connection
) -> None:
    # given: pooled connections
    for _ in range(3):
        assert (await prod_gql(CONTACTS)).errors is None
    # when: every Herald connection to this test database is terminated while idle
    killed = await pg.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'herald' "
        "AND pid <> pg_backend_pid()"
    )
    assert killed >= 1
    # then: the very next requests succeed (the pool pings before lending a connection)
    for _ in range(5):
        assert (await prod_gql(CONTACTS)).errors is None


async def test_a_mutation_after_its_pooled_connections_were_killed_succeeds(
    prod_gql: GqlClient, pg: asyncpg.Connection
) -> None:
    # given: a mutation's connections in the pool, all of them busy once
    contact_id = (await prod_gql.ok(CREATE_CONTACT))["createContact"]["contact"]["id"]
    await asyncio.gather(*(prod_gql(RENAME, {"id": contact_id}) for _ in range(4)))
    # when: every Herald connection is terminated while idle, and their backends are gone
    pids = await pg.fetch(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'herald'"
    )
    assert pids
    deadline = time.monotonic() + 5
    while await pg.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", [p["pid"] for p in pids]
    ):
        assert time.monotonic() < deadline, "the killed backends did not exit"
        await asyncio.sleep(0.01)
    # then: the very next mutations succeed, each opening its savepoint on a live connection
    for _ in range(3):
        renamed = await prod_gql(RENAME, {"id": contact_id})
        assert renamed.errors is None, renamed.errors
        assert renamed.data == {"updateContact": {"__typename": "UpdateContactSuccess"}}


# --- PostgreSQL restarted (a throwaway cluster, not the run's) ---


@pytest.fixture
def throwaway_postgres() -> Iterator[OwnPostgres]:
    server = OwnPostgres()
    yield server
    server.close()


async def test_pool_recovers_after_a_postgres_restart(
    throwaway_postgres: OwnPostgres, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # given: Herald on its own PostgreSQL, migrated, with a key
    url = throwaway_postgres.url
    own = load_settings(database_url=url).async_database_url
    await asyncio.to_thread(migrate.upgrade, own)
    key = await create_api_key(load_settings(database_url=url), "admin")
    with serve(prod(settings, database_url=url)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=15) as http:
            gql = GqlClient(http, key)
            for _ in range(3):
                assert (await gql(CONTACTS)).errors is None
            # when: PostgreSQL goes down
            await asyncio.to_thread(throwaway_postgres.pg_ctl, "-m", "fast", "stop")
            try:
                # then: requests fail cleanly and fast, readiness says so
                started = time.perf_counter()
                assert_masked(await gql(CAMPAIGN))
                # refused at connect, not hung: generous against a loaded machine, still
                # well under the 10 s query timeout a hanging connect would run into
                assert time.perf_counter() - started < 5
                assert (await http.get("/readyz")).status_code == 503
            finally:
                # and when it is back (same data directory, same port)
                await asyncio.to_thread(throwaway_postgres.pg_ctl, "start")
            # the very first request succeeds, without restarting Herald
            first = await gql(CONTACTS)
            assert first.errors is None, first.errors
            assert (await http.get("/readyz")).status_code == 200
            # and so does a restart in one step, with connections in the pool
            await asyncio.to_thread(throwaway_postgres.pg_ctl, "-m", "fast", "restart")
            for _ in range(3):
                assert (await gql(CONTACTS)).errors is None


# --- Redis down: degraded cache, rate limiting fails open ---


@pytest.fixture
def throwaway_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    yield server
    server.close()


async def test_redis_down_degrades_the_cache_and_rate_limiting_fails_open(
    throwaway_redis: OwnRedis,
    settings: Settings,
    admin_key: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import app.http.ratelimit

    monkeypatch.setattr(app.http.ratelimit, "RETRY_AFTER_FAILURE_S", 0.2)
    own = prod(
        settings, redis_url=throwaway_redis.url, rate_limit_requests=3, rate_limit_window_s=1.0
    )
    with serve(own) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            gql = GqlClient(http, admin_key)
            # given: the limit is enforced while Redis is up
            assert [(await gql(CONTACTS)).status for _ in range(4)] == [200, 200, 200, 429]
            # when: Redis goes away, and the window this process knew full has moved on
            throwaway_redis.stop()
            await asyncio.sleep(1.05)
            caplog.clear()
            # then: every request is served from PostgreSQL, none is limited
            results = [await gql(CONTACTS) for _ in range(8)]
            assert all(r.errors is None and r.status == 200 for r in results)
            assert results[0].data == {"contacts": {"totalCount": 0, "nodes": []}}
            outage = [r for r in caplog.records if "rate limiting off" in r.getMessage()]
            assert len(outage) == 1  # logged once per outage, not per request
            ready = (await http.get("/readyz")).json()
            assert ready["redis"] == "degraded"
            # and when Redis is back, the limit applies again
            throwaway_redis.start()
            await asyncio.sleep(0.3)
            statuses = [(await gql(CONTACTS)).status for _ in range(5)]
            assert statuses[-1] == 429
            assert any("rate limiting on again" in r.getMessage() for r in caplog.records)


# --- a mutation failing half-way writes nothing ---


async def test_import_whose_last_row_fails_in_postgres_writes_nothing(
    gql: GqlClient, session: AsyncSession, settings: Settings
) -> None:
    # given: rows that pass validation; PostgreSQL refuses the last one's name (a trigger
    # standing for a rule only the database knows), after the earlier rows were sent
    category = (await gql.ok(CREATE_CATEGORY))["createCategory"]["category"]["id"]
    rows = [{"phone": f"+3361234{i:04d}", "name": f"Contact {i}"} for i in range(50)]
    rows[-1]["name"] = "Refused"
    admin = await asyncpg.connect(settings.async_database_url.replace("+asyncpg", ""))
    await admin.execute(REFUSE_NAME)
    try:
        # when
        result = await gql(IMPORT, {"rows": rows, "categories": [category]})
    finally:
        await admin.execute(ALLOW_NAME)
        await admin.close()
    # then: one clean error that shows nothing of PostgreSQL's, and no contact or
    # membership was written
    assert result.data is None
    assert result.errors is not None
    assert len(result.errors) == 1
    assert result.errors[0]["message"] == "a text value is too long; nothing was written"
    assert result.errors[0]["extensions"] == {"code": "BAD_USER_INPUT"}
    contacts = (await session.execute(text("SELECT count(*) FROM contacts"))).scalar_one()
    members = (await session.execute(text("SELECT count(*) FROM category_contacts"))).scalar_one()
    assert (contacts, members) == (0, 0)
    # and the same import without the bad row goes through
    ok = await gql.ok(IMPORT, {"rows": rows[:-1], "categories": [category]})
    assert ok["importContacts"]["created"] == 49


async def test_no_statement_outlives_its_request_by_more_than_a_second(
    settings: Settings,
) -> None:
    # given: the API's connections, both pools, with a 0.5 s operation time limit
    runtime = Runtime.open(settings.model_copy(update={"query_timeout_s": 0.5}))
    try:
        # when: statements that would run 3 s, past the limit and its second of grace
        async with runtime.engine.connect() as connection:
            with pytest.raises(DBAPIError) as through_the_engine:
                await connection.execute(text("SELECT pg_sleep(3)"))
        async with runtime.sessionmaker() as session:
            session.read_only()
            with pytest.raises(asyncpg.QueryCanceledError):
                await rows(session, text("SELECT pg_sleep(3)"))
    finally:
        await runtime.close()

    # then: PostgreSQL stopped both (statement_timeout)
    assert through_the_engine.value.orig.sqlstate == "57014"  # type: ignore[union-attr]
