"""The `herald` command: dev, serve, worker, migrate, seed, apikey and stats."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from app.config import ConfigError, Settings, get_settings, load_settings

if TYPE_CHECKING:
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


# --- herald serve / worker ---


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.http_protocol import HttpProtocol

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
        http=HttpProtocol,
    )
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    _require_urls(settings, "worker")
    check_database(settings)
    check_redis(settings)
    processes = args.processes or settings.worker_processes
    threads = args.threads or settings.worker_threads
    argv = [sys.executable, "-m", "dramatiq", "app.worker.process"]
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


def _cmd_dev(args: argparse.Namespace) -> int:
    from app.dev import run  # starts embedded services, the API and a worker in this process

    return run(args)


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
