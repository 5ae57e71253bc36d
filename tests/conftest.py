"""Test harness: PostgreSQL, Redis and RabbitMQ of the run's own, and the real app over HTTP."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
import redis
import redis.asyncio as aioredis
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from app.config import Settings, load_settings
from app.db import migrate
from app.http.protocol import server_options
from app.main import create_app
from app.observability.metrics import PROJECTION_FALLBACKS
from bench.rabbitmq import Node, scripts
from bench.servers import named_or_own
from tests.fake_whatsapp import FakeWhatsApp, Worker, serve_fake, worker_env

# The suite configures Herald itself: a developer's HERALD_* variables (naming their own
# services) must reach neither it nor the processes it starts. HERALD_TEST_* choose servers.
for _name in [
    n for n in os.environ if n.startswith("HERALD_") and not n.startswith("HERALD_TEST_")
]:
    del os.environ[_name]


@dataclass(frozen=True)
class Services:
    admin_database_url: str  # a database we may CREATE/DROP other databases from
    redis_url: str


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """This run's own PostgreSQL cluster and redis-server, stopped and removed at the end.

    HERALD_TEST_DATABASE_URL (a database the run may CREATE DATABASE from) and
    HERALD_TEST_REDIS_URL (a database the run flushes before every test) name servers of
    a developer's choosing instead.
    """
    with ExitStack() as own:
        yield Services(*named_or_own(own, "HERALD_TEST_DATABASE_URL", "HERALD_TEST_REDIS_URL"))


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[Node]:
    """A RabbitMQ node of this run's own, started once for the tests that use it."""
    if scripts() is None:
        pytest.skip("rabbitmq-server is not installed; the RabbitMQ tests start a node of it")
    node = Node()
    yield node
    node.stop()


def _with_database(url: str, name: str) -> str:
    head, sep, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}{sep}{query}"


@contextmanager
def scratch_database(services: Services, prefix: str) -> Iterator[str]:
    """CREATE a database of our own on the admin server; DROP it on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = load_settings(database_url=services.admin_database_url).async_database_url

    async def admin_sql(sql: str) -> None:
        conn = await asyncpg.connect(admin.replace("+asyncpg", ""))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(services.admin_database_url, name)
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def database_url(services: Services) -> Iterator[str]:
    """A database of this run's own, built by `alembic upgrade head`, dropped afterwards."""
    with scratch_database(services, "herald_test") as url:
        migrate.upgrade(load_settings(database_url=url).async_database_url)
        yield url


@pytest.fixture
def fresh_database(services: Services) -> Iterator[str]:
    """An empty database (no migrations applied) for tests that build or tear down schemas."""
    with scratch_database(services, "herald_fresh") as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str, services: Services) -> Settings:
    return load_settings(
        database_url=database_url,
        redis_url=services.redis_url,
        expose_sql_count=True,
        env="dev",
        _env_file=None,  # nor a developer's `.env`
    )


TABLES = (
    "interactions, messages, campaign_categories, campaigns, category_contacts, "
    "categories, contacts, api_keys, templates, sender_numbers, messaging_limit"
)


@pytest.fixture(autouse=True)
def clean_state(settings: Settings) -> None:
    """Each test starts from empty tables and an empty Redis database."""

    async def truncate() -> None:
        conn = await asyncpg.connect(settings.async_database_url.replace("+asyncpg", ""))
        try:
            await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(truncate())
    _settle_cache_writes()
    redis.Redis.from_url(settings.redis_url).flushdb()  # type: ignore[arg-type]


@pytest_asyncio.fixture(name="redis")
async def async_redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """An asyncio client of the run's own Redis, on the tests' database."""
    assert settings.redis_url is not None
    client = aioredis.Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@dataclass(frozen=True)
class Server:
    url: str
    app: Any


@contextmanager
def serve(settings: Settings) -> Iterator[Server]:
    """The real ASGI app under uvicorn, with `herald serve`'s options (HTTP protocol, limits),
    on a free loopback port, in a background thread."""
    app = create_app(settings)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        **server_options(settings),
    )
    uv = uvicorn.Server(config)
    loops: list[asyncio.AbstractEventLoop] = []

    async def run() -> None:
        loops.append(asyncio.get_running_loop())
        await uv.serve()

    def thread_main() -> None:
        """`uv.run`, with its loop recorded for `_settle_cache_writes`."""
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(run())

    thread = threading.Thread(target=thread_main, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    running = (loops[0], app)
    _RUNNING.append(running)
    try:
        yield Server(f"http://127.0.0.1:{port}", app)
    finally:
        _RUNNING.remove(running)
        uv.should_exit = True
        thread.join(timeout=10)


# The servers of `serve` now running: their event loops and apps.
_RUNNING: list[tuple[asyncio.AbstractEventLoop, Any]] = []


def _settle_cache_writes() -> None:
    """Wait until every running server's cache has stored what it computed: a value written
    behind its answer must not land in the next test's Redis database, after the flush."""
    for loop, app in list(_RUNNING):
        runtime = getattr(app.state, "runtime", None)
        if runtime is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(runtime.cache.settle(), loop).result(timeout=10)


@pytest.fixture(scope="session")
def server(settings: Settings) -> Iterator[Server]:
    with serve(settings) as running:
        yield running


@pytest.fixture(scope="module")
def servers(settings: Settings) -> Iterator[tuple[Server, Server]]:
    """Two servers on the same database and Redis: planned queries on, and the standard
    path only (`fast_execution` off); no rate limit."""
    update = {"rate_limit_requests": 0}
    fast = settings.model_copy(update={**update, "fast_execution": True})
    standard = settings.model_copy(update={**update, "fast_execution": False})
    with serve(fast) as planned, serve(standard) as reference:
        yield planned, reference


@dataclass(frozen=True)
class GqlResult:
    data: Any
    errors: list[dict[str, Any]] | None
    sql: int
    status: int
    redis: int = -1  # the request's own Redis round trips (`redisRoundTrips`)


class GqlClient:
    """Posts GraphQL documents to the running server over real HTTP.

    Sends `Authorization: Bearer <key>` when it has a key (the `gql` fixture: a fresh admin
    key per test); `as_key(other)` or `as_key(None)` gives a client for another key or none.
    """

    def __init__(self, http: httpx.AsyncClient, key: str | None = None) -> None:
        self.http = http
        self.key = key

    def as_key(self, key: str | None) -> GqlClient:
        return GqlClient(self.http, key)

    @property
    def auth_headers(self) -> dict[str, str]:
        return {} if self.key is None else {"Authorization": f"Bearer {self.key}"}

    async def __call__(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        operation_name: str | None = None,
        **headers: str,
    ) -> GqlResult:
        payload = {"query": query, "variables": variables or {}, "operationName": operation_name}
        request = self.http.build_request(
            "POST",
            "/graphql",
            json=payload,
            headers={**self.auth_headers, **headers},
        )
        if self.key is None and "Authorization" not in headers:
            request.headers.pop("Authorization", None)  # the `http` fixture's default key
        response = await self.http.send(request)
        body = response.json()
        extensions = body.get("extensions", {})
        return GqlResult(
            data=body.get("data"),
            errors=body.get("errors"),
            sql=extensions.get("sqlStatements", -1),
            status=response.status_code,
            redis=extensions.get("redisRoundTrips", -1),
        )

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        """Run a document that must succeed; return its data."""
        result = await self(query, variables)
        assert result.errors is None, result.errors
        return result.data


@pytest_asyncio.fixture
async def http(server: Server, admin_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the test server that sends this test's admin key by default."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=headers) as client:
        yield client


async def create_api_key(settings: Settings, role: str, name: str | None = None) -> str:
    """A new key of `role` written straight to the test database; returns the plaintext."""
    from app.api_keys.service import generate_key, hash_key

    key = generate_key()
    conn = await asyncpg.connect(settings.async_database_url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "INSERT INTO api_keys (name, role, key_hash, key_prefix) VALUES ($1, $2, $3, $4)",
            name or f"test {role}",
            role,
            hash_key(key),
            key[:9],
        )
    finally:
        await conn.close()
    return key


@pytest_asyncio.fixture
async def admin_key(settings: Settings, clean_state: None) -> str:
    """An admin key created after this test's truncation."""
    return await create_api_key(settings, "admin")


@pytest_asyncio.fixture
async def gql(http: httpx.AsyncClient, admin_key: str) -> GqlClient:
    return GqlClient(http, admin_key)


@pytest_asyncio.fixture
async def session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A session on the test database for arranging data and checking what was written."""
    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    async with async_sessionmaker(engine, expire_on_commit=False)() as db:
        yield db
    await engine.dispose()


ROOT = Path(__file__).resolve().parent.parent


def projection_fallbacks() -> float:
    """Columns read without being fetched so far (schema/common/selection.py's fallback),
    counted in this process, where the servers of `serve` run too."""
    return sum(
        sample.value
        for metric in PROJECTION_FALLBACKS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[FakeWhatsApp, str]]:
    """One fake Cloud API per test run: (its state, its base URL)."""
    fake = FakeWhatsApp()
    with serve_fake(fake) as url:
        yield fake, url


@pytest.fixture
def fake(fake_server: tuple[FakeWhatsApp, str]) -> FakeWhatsApp:
    """The fake with its behaviour and counters reset for this test."""
    fake_server[0].reset()
    return fake_server[0]


StartWorker = Callable[..., Awaitable[Worker]]


@pytest.fixture
def start_worker(
    settings: Settings, fake: FakeWhatsApp, fake_server: tuple[FakeWhatsApp, str], tmp_path: Path
) -> Iterator[StartWorker]:
    """Start dispatch workers on the fake Cloud API, logging to tmp_path/worker.log.

    `await start_worker(processes=2, **settings)` returns once every process consumes;
    every worker started is stopped after the test.
    """
    started: list[Worker] = []

    async def start(processes: int = 2, **overrides: object) -> Worker:
        base_url = str(overrides.pop("whatsapp_api_base_url", fake_server[1]))
        env = worker_env(settings, base_url, **overrides)
        started.append(Worker(env, tmp_path / "worker.log", processes))
        await started[-1].ready()
        return started[-1]

    yield start
    for worker in started:
        worker.stop()


@asynccontextmanager
async def turns_taken() -> AsyncIterator[Callable[[], int]]:
    """How many turns another task has had on the event loop since entering: a task that
    counts one each time it runs."""
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = turns
    try:
        yield lambda: turns - before
    finally:
        task.cancel()
