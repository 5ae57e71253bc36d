"""Servers of a run's own, for tests and benchmarks: a redis-server and a PostgreSQL cluster on
free loopback ports, their files in a temporary directory that `close()` removes.

Nothing is written to disk that a crash could need: Redis saves nothing, PostgreSQL runs
without fsync. The binaries are the installed ones, else those bundled with Herald's
embedded services (`app/process/embedded.py`).
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack
from functools import cache
from pathlib import Path
from typing import Any

import redis

from app.process.embedded import postgres_binaries, redis_server_binary

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A redis-server on a free loopback port, DEBUG enabled; `stop()` then `start()` is an
    outage that ends on the same port, empty."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="herald-redis-"))
        self.binary = redis_server_binary()
        version = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        # DEBUG (tests stall the server with it) is opt-in from Redis 7; 6 rejects the flag.
        self.debug = [] if " v=6." in version.stdout else ["--enable-debug-command", "yes"]
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        with (self.base / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                 "--appendonly", "no", "--dir", str(self.base), *self.debug],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        client = redis.Redis(host=HOST, port=self.port, socket_timeout=0.5)
        deadline = time.monotonic() + 20
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        log_text = (self.base / "redis.log").read_text()
                        raise RuntimeError(f"redis-server did not start:\n{log_text}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Kill the server, as a crash would (it holds nothing worth a clean shutdown)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


# Settings for a cluster that is thrown away: a crash may lose or corrupt it, nothing else.
POSTGRES_CONF = """
listen_addresses = '{host}'
port = {port}
unix_socket_directories = '{base}'
fsync = off
synchronous_commit = off
full_page_writes = off
"""


class OwnPostgres:
    """A PostgreSQL cluster (`initdb`) on a free loopback port, its unix socket in its own
    directory, user `postgres` with trust authentication."""

    def __init__(self) -> None:
        binaries = postgres_binaries()
        self.bin_dir = binaries.bin_dir
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="herald-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self._as_owner: dict[str, Any] = {}
        if binaries.user is not None:  # PostgreSQL will not run as root
            owner = pwd.getpwnam(binaries.user)
            shutil.chown(self.base, owner.pw_uid, owner.pw_gid)
            self._as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--no-sync")  # fmt: skip
        conf = POSTGRES_CONF.format(host=HOST, port=self.port, base=self.base)
        with (self.data / "postgresql.conf").open("a") as file:
            file.write(conf)
        self.pg_ctl("start")

    @property
    def url(self) -> str:
        """The `postgres` database, from which others are created."""
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        """`pg_ctl` on this cluster, waiting for the change: `pg_ctl("-m", "fast", "stop")`."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", *args)

    def _run(self, program: str, *args: str) -> None:
        # Output to a file, not a pipe: the postmaster that pg_ctl starts would inherit a
        # pipe and keep it open.
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(
                [str(self.bin_dir / program), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.base,
                timeout=120,
                check=False,
                **self._as_owner,
            )
            if result.returncode != 0:
                out.seek(0)
                log = self.log.read_text() if self.log.exists() else ""
                raise RuntimeError(f"{program} {' '.join(args)}: {out.read()}{log}")

    def close(self) -> None:
        """Stop at once (nothing here is kept) and remove every file."""
        if (self.data / "postmaster.pid").exists():
            self.pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def named_or_own(stack: ExitStack, database_variable: str, redis_variable: str) -> tuple[str, str]:
    """The PostgreSQL (a database others may be created from) and Redis URLs the two
    variables name, else those of a cluster and a redis-server started here, which `stack`
    removes when it closes: a run writes only to servers it started or was pointed at."""
    database = os.environ.get(database_variable)
    if database is None:
        postgres = OwnPostgres()
        stack.callback(postgres.close)
        database = postgres.url
    redis_url = os.environ.get(redis_variable)
    if redis_url is None:
        server = OwnRedis()
        stack.callback(server.close)
        redis_url = server.url
    return database, redis_url


@cache
def bench_services() -> tuple[str, str]:
    """The benchmarks' PostgreSQL and Redis URLs (`named_or_own`: `HERALD_BENCH_ADMIN_URL`,
    `HERALD_BENCH_REDIS_URL`), started on first use and removed when the run exits, so a
    benchmark runs on a machine that has none."""
    stack = ExitStack()
    atexit.register(stack.close)
    return named_or_own(stack, "HERALD_BENCH_ADMIN_URL", "HERALD_BENCH_REDIS_URL")
