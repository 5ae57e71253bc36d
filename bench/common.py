"""Benchmark plumbing: a seeded database of its own and the real server in a subprocess."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import psutil
import redis

from app.api_keys.service import ApiKeyService
from app.config import load_settings
from app.db import migrate
from app.db.engine import create_engine, create_sessionmaker
from app.models import ApiKeyRole
from app.seed import seed
from bench.servers import bench_services, free_port


def admin_url() -> str:
    """The benchmarks' PostgreSQL, its `postgres` database (`bench_services`)."""
    return bench_services()[0]


def redis_url() -> str:
    """The benchmarks' Redis (`bench_services`)."""
    return bench_services()[1]


@dataclass(frozen=True)
class Scale:
    contacts: int
    campaigns: int
    messages_per_campaign: int

    @property
    def database(self) -> str:
        return f"herald_bench_{self.contacts}_{self.campaigns}_{self.messages_per_campaign}"


def database_url(scale: Scale) -> str:
    return admin_url().rsplit("/", 1)[0] + "/" + scale.database


async def _prepare(scale: Scale) -> None:
    admin = await asyncpg.connect(admin_url())
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", scale.database
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{scale.database}"')
    finally:
        await admin.close()
    settings = load_settings(database_url=database_url(scale), redis_url=redis_url())
    # A database seeded by older code is brought to the current schema (counters included).
    await asyncio.to_thread(migrate.upgrade, settings.async_database_url)
    if exists:
        return
    engine = create_engine(settings)
    try:
        report = await seed(engine, scale.contacts, scale.campaigns, scale.messages_per_campaign)
        print(f"seeded {report.messages:,} messages in {report.seconds:.1f} s", file=sys.stderr)
    finally:
        await engine.dispose()


async def fresh_database(name: str) -> str:
    """An empty database `name`, dropped first if it exists, built by `alembic upgrade head`."""
    admin = await asyncpg.connect(admin_url())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = admin_url().rsplit("/", 1)[0] + "/" + name
    await asyncio.to_thread(migrate.upgrade, load_settings(database_url=url).async_database_url)
    return url


def clean_dispatch_redis() -> None:
    """Drop what an earlier dispatch run left in the bench Redis: broker queues, quota, locks."""
    client = redis.Redis.from_url(redis_url())
    for pattern in ("dramatiq:*", "whatsapp:*", "campaign:*"):
        keys = list(client.scan_iter(pattern, count=1000))
        if keys:
            client.delete(*keys)


def prepare(scale: Scale) -> str:
    """A database seeded at this scale (created and seeded once, then reused)."""
    asyncio.run(_prepare(scale))
    return database_url(scale)


async def _admin_key(database: str) -> str:
    settings = load_settings(database_url=database)
    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as session:
            created = await ApiKeyService(session).create("bench", ApiKeyRole.ADMIN)
            await session.commit()
            return created.key
    finally:
        await engine.dispose()


def authorization(database: str) -> dict[str, str]:
    """Headers with a fresh admin key for the bench database."""
    return {"Authorization": f"Bearer {asyncio.run(_admin_key(database))}"}


def server_environment(database: str, **env: str) -> dict[str, str]:
    """The environment a benchmarked Herald runs with: production settings, SQL counts
    exposed, no per-key throttle (measure Herald, not its rate limit); `env` overrides."""
    return {
        **os.environ,
        "HERALD_DATABASE_URL": database,
        "HERALD_REDIS_URL": redis_url(),
        "HERALD_ENV": "prod",
        "HERALD_EXPOSE_SQL_COUNT": "true",
        "HERALD_RATE_LIMIT_REQUESTS": "0",
        **env,
    }


@contextmanager
def served(
    command: list[str], port: int, environment: dict[str, str], cwd: Path | None = None
) -> Iterator[str]:
    """A server `command` listening on `port`, until `/readyz` answers; yields its base URL
    and stops it afterwards."""
    process = subprocess.Popen(command, cwd=cwd, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{command[0]} did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def running_server(
    database: str, workers: int = 1, checkout: Path | None = None, **env: str
) -> Iterator[str]:
    """`herald serve --workers N` as operators run it; yields its base URL. With `checkout`,
    the code of that other checkout of Herald, run by this interpreter."""
    port = free_port()
    herald = [str(Path(sys.executable).with_name("herald"))]
    if checkout is not None:
        herald = [sys.executable, "-m", "app.cli"]
    command = [*herald, "serve", "--workers", str(workers), "--port", str(port)]
    with served(command, port, server_environment(database, **env), checkout) as url:
        yield url


def server_process(url: str) -> psutil.Process:
    """The process listening on the port of `url` (a server started for a benchmark)."""
    port = urlsplit(url).port
    for connection in psutil.net_connections("tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == "LISTEN":
            assert connection.pid is not None
            return psutil.Process(connection.pid)
    raise RuntimeError("no process listens on the server's port")


def cpu_seconds(process: psutil.Process) -> float:
    """CPU time the process and every process below it have used so far, user and system
    (a server that starts workers or helper processes is charged for them too)."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        times = each.cpu_times()
        total += times.user + times.system
    return total


async def _backends(database: str) -> list[int]:
    connection = await asyncpg.connect(database)
    try:
        found = await connection.fetch(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row["pid"] for row in found]
    finally:
        await connection.close()


def database_cpu(database: str) -> dict[int, float] | None:
    """CPU seconds so far of each PostgreSQL backend connected to `database`, by process id:
    the servers' pooled connections, whose work a statement costs on the database's side.
    None when the database runs on another machine (its processes are not visible here)."""
    seconds = {}
    for pid in asyncio.run(_backends(database)):
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue  # gone since, or another machine's: reported as unknown when all are
        seconds[pid] = times.user + times.system
    return seconds or None


def database_cpu_used(
    before: dict[int, float] | None, after: dict[int, float] | None
) -> float | None:
    """CPU seconds the backends used between two `database_cpu` readings (a backend that
    connected in between is counted whole; one that left, not at all)."""
    if before is None or after is None:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def lua_string(text: str) -> str:
    """A Lua long-bracket literal holding `text` verbatim."""
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"
