"""Preflight checks for the `herald` commands: an unreachable or misconfigured service
becomes one line on stderr and an exit code, never a traceback."""

from __future__ import annotations

import asyncio
import sys
from typing import NoReturn

from app.config import ConfigError, Settings


class Unavailable(Exception):
    """A service named in the configuration cannot be reached; the message is one line."""


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"herald: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def require_urls(settings: Settings, command: str, redis: bool = True) -> None:
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
