"""The `herald` command: dev, serve, worker, migrate, seed, plan, apikey, stats and templates."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.config import ConfigError, get_settings, load_settings
from app.process.preflight import Unavailable, check_database, check_redis, fail, require_urls
from app.seed.demo import DEMO_CAMPAIGNS, DEMO_CONTACTS, DEMO_MESSAGES_PER_CAMPAIGN

if TYPE_CHECKING:
    from app.seed import SeedReport

# --- herald serve / worker ---


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.http.protocol import server_options

    # GraphiQL is opt-in in production; spawned worker processes read it from the env.
    if args.graphiql:
        os.environ["HERALD_GRAPHIQL"] = "true"
    else:
        os.environ.setdefault("HERALD_GRAPHIQL", "false")
    get_settings.cache_clear()
    settings = load_settings()
    require_urls(settings, "serve")
    check_database(settings)
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if args.workers > 1 or given:
        from app.observability.metrics import prepare_multiprocess_dir

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
        **server_options(settings),
    )
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    settings = load_settings()
    require_urls(settings, "worker")
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

    from app.db import migrate

    settings = load_settings()
    require_urls(settings, "migrate", redis=False)
    check_database(settings)
    try:
        if args.downgrade:
            migrate.downgrade(settings.async_database_url, args.downgrade)
            print(f"herald: database downgraded to {args.downgrade}")
        else:
            migrate.upgrade(settings.async_database_url, args.revision)
            print(f"herald: database upgraded to {args.revision}")
    except CommandError as exc:
        fail(f"migrate: {exc}")
    return 0


def _cmd_seed(args: argparse.Namespace) -> int:
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    from app.seed import SeedError, seed

    settings = load_settings()
    require_urls(settings, "seed", redis=False)
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
        fail(f"seed: {exc}")
    print(f"herald: seeded {report.summary()}")
    return 0


# --- herald apikey ---


def _cmd_apikey(args: argparse.Namespace) -> int:
    from app.api_keys.cli import run

    settings = load_settings()
    require_urls(settings, "apikey", redis=False)
    check_database(settings)
    return run(args, settings)


def _cmd_stats(args: argparse.Namespace) -> int:
    from app.stats.cli import run

    settings = load_settings()
    require_urls(settings, "stats", redis=False)
    check_database(settings)
    return run(args, settings)


def _cmd_templates(args: argparse.Namespace) -> int:
    from app.templates.cli import run

    settings = load_settings()
    require_urls(settings, "templates")
    check_database(settings)
    check_redis(settings)
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
    from app.process.dev import (
        run,  # starts embedded services, the API and a worker in this process
    )

    return run(args)


def _cmd_plan(args: argparse.Namespace) -> int:
    import json

    from schema.execution.plans.documents import plan_source
    from schema.schema import schema

    try:
        variables = json.loads(args.variables)
        if not isinstance(variables, dict):
            raise ValueError("--variables takes a JSON object")
        print(plan_source(schema, args.query, args.operation, variables))
    except ValueError as exc:
        fail(str(exc))
    return 0


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

    plan = command("plan", _cmd_plan, "Print the Python a query's plan is compiled to.")
    plan.add_argument("query", help="the GraphQL document")
    plan.add_argument("--operation", help="the operation to plan, when it has several")
    plan.add_argument("--variables", default="{}", help="as JSON (they pick @skip/@include)")

    from app.api_keys.cli import add_arguments as apikey_arguments

    apikey_arguments(command("apikey", _cmd_apikey, "Create, list or revoke API keys."))

    from app.stats.cli import add_arguments as stats_arguments

    stats_arguments(command("stats", _cmd_stats, "Check (and repair) the statistics counters."))

    from app.templates.cli import add_arguments as templates_arguments

    templates_arguments(
        command("templates", _cmd_templates, "Sync the WhatsApp Business Account's templates.")
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "seed" and args.messages_per_campaign > args.contacts:
        build_parser().error("--messages-per-campaign cannot exceed --contacts")
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        fail(f"configuration error: {exc}", code=2)
    except Unavailable as exc:
        fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
