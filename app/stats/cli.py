"""`herald stats verify [--repair]`: are the counters exactly count(*)? Fix them if not."""

from __future__ import annotations

import argparse
import asyncio
import logging

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.cache import bump_generations, open_redis
from app.config import Settings
from app.stats.service import Verification, verify

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="stats_action", required=True, metavar="ACTION")
    check = actions.add_parser("verify", help="compare the counters with count(*); exit 1 on drift")
    check.add_argument(
        "--repair", action="store_true", help="fold the counter rows, then correct any drift"
    )


async def _run(settings: Settings, repair: bool) -> Verification:
    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    try:
        result = await verify(engine, repair=repair)
    finally:
        await engine.dispose()
    if result.repaired and settings.redis_url:
        redis = open_redis(settings.redis_url, timeout=1.0)
        try:
            await bump_generations(redis, "stats", "campaigns")  # cached figures were wrong
        except (RedisError, OSError) as exc:
            logger.warning("repaired, but the cache could not be invalidated: %s", exc)
        finally:
            await redis.aclose()
    return result


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Prints one line per drifting counter; 0 when exact (or repaired), 1 otherwise."""
    result = asyncio.run(_run(settings, args.repair))
    if result.folded:
        print(f"herald: folded {result.folded:,} counter rows into the others")
    for drift in result.drift:
        scope = drift.scope if isinstance(drift.scope, str) else f"campaign {drift.scope}"
        print(
            f"drift: {scope} {drift.field}: counter {drift.counted:,}, "
            f"count(*) {drift.actual:,} ({drift.delta:+,})"
        )
    if not result.drift:
        print("herald: statistics counters are exact")
        return 0
    if result.repaired and not result.remaining:
        print(f"herald: repaired {len(result.drift)} counters; they are exact now")
        return 0
    if result.repaired:
        print(f"herald: {len(result.remaining)} counters still drift after repair")
    else:
        print(f"herald: {len(result.drift)} counters drift; run with --repair to correct them")
    return 1
