"""`herald apikey create|list|revoke`, and the stable admin key `herald dev` prints."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from app.api_keys.auth import CallerCache, announce_revocation
from app.api_keys.service import ApiKeyService
from app.cache import open_redis
from app.config import Settings
from app.errors import InvalidInput, NotFound
from app.models import ApiKeyRole

DEV_KEY_FILE = "dev-api-key"
T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="apikey_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument(
        "--role", required=True, choices=[r.value for r in ApiKeyRole], help="viewer|editor|admin"
    )
    listing = actions.add_parser("list", help="list keys (never their secret)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = actions.add_parser("revoke", help="revoke a key by id; refused from the next request")
    revoke.add_argument("id", type=int)


async def _in_session(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed transaction on a short-lived engine."""
    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    try:
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            result = await work(session)
            await session.commit()
            return result
    finally:
        await engine.dispose()


async def _announce_revocation(settings: Settings, key_id: int) -> None:
    """Running API processes forget their cached lookups and close the key's WebSockets
    (app/api_keys/auth.py)."""
    if settings.redis_url is None:
        return
    redis = open_redis(settings.redis_url, timeout=1.0)
    try:
        await announce_revocation(redis, CallerCache(0), key_id)
    finally:
        await redis.aclose()


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Prints to stdout; returns the exit status."""
    action = args.apikey_action
    try:
        if action == "create":

            async def create(session: AsyncSession) -> None:
                created = await ApiKeyService(session).create(args.name, ApiKeyRole(args.role))
                print(f"herald: created {args.role} key {created.row.id} ({created.row.name}):")
                print(created.key)
                print("herald: store it now; it cannot be shown again")

            asyncio.run(_in_session(settings, create))
        elif action == "list":

            async def listing(session: AsyncSession) -> None:
                for row in await ApiKeyService(session).list(include_revoked=args.all):
                    state = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
                    used = f"{row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never"
                    print(
                        f"{row.id}\t{row.key_prefix}…\t{row.role}\t{state}\tused {used}\t{row.name}"
                    )

            asyncio.run(_in_session(settings, listing))
        else:

            async def revoke(session: AsyncSession) -> None:
                row = await ApiKeyService(session).revoke(args.id)
                print(f"herald: key {row.id} ({row.name}) revoked")

            asyncio.run(_in_session(settings, revoke))
            asyncio.run(_announce_revocation(settings, args.id))
    except (InvalidInput, NotFound) as exc:
        print(f"herald: apikey {action}: {exc.message}")
        return 1
    return 0


def ensure_dev_key(settings: Settings) -> str:
    """The admin key of `herald dev`: kept in the data dir, so it survives restarts; made
    again when missing, or unknown to (or revoked in) the database in use."""
    path = Path(settings.data_dir).resolve() / DEV_KEY_FILE

    async def ensure(session: AsyncSession) -> str:
        service = ApiKeyService(session)
        if path.exists():
            key = path.read_text().strip()
            if key and await service.is_live(key):
                return key
        created = await service.create("herald dev", ApiKeyRole.ADMIN)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(created.key + "\n")
        return created.key

    return asyncio.run(_in_session(settings, ensure))
