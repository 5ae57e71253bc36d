"""`herald templates sync`: bring the WhatsApp Business Account's templates into Herald."""

from __future__ import annotations

import argparse
import asyncio
from typing import TYPE_CHECKING

from app.config import Settings
from app.process.preflight import fail

if TYPE_CHECKING:
    from app.templates.service import Synced


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="templates_action", required=True, metavar="ACTION")
    actions.add_parser(
        "sync",
        help="list the account's templates (HERALD_WHATSAPP_BUSINESS_ACCOUNT_ID) and store them",
    )


async def sync_once(settings: Settings) -> Synced:
    """One sync with engine and Redis clients of its own (the command, `herald dev`)."""
    # Imported here: building the `herald` parser must not load the whole application.
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
    from sqlalchemy.pool import NullPool

    from app.cache import open_redis
    from app.templates.tasks import sync_templates

    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    redis = open_redis(str(settings.redis_url), timeout=1.0)
    try:
        return await sync_templates(settings, async_sessionmaker(engine), redis)
    finally:
        await redis.aclose()
        await engine.dispose()


def summary(synced: Synced) -> str:
    unchanged = synced.listed - synced.skipped - synced.added - synced.changed
    line = (
        f"{synced.listed} listed: {synced.added} added, {synced.changed} changed, "
        f"{unchanged} unchanged; {synced.deleted} no longer listed (marked DELETED)"
    )
    if synced.skipped:
        line += f"; {synced.skipped} without a name or language, skipped"
    if synced.campaigns_paused:
        line += f"; {synced.campaigns_paused} campaigns paused (template paused or disabled)"
    return line


def run(args: argparse.Namespace, settings: Settings) -> int:
    from app.whatsapp.templates import ListingError

    try:
        synced = asyncio.run(sync_once(settings))
    except ListingError as exc:
        fail(f"templates sync: {exc}")
    print(f"herald: templates synced: {summary(synced)}")
    return 0
