"""RabbitMQ for tests and benchmarks: a node of our own, never the machine's broker."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.servers import free_port

HOST = "127.0.0.1"


def scripts() -> Path | None:
    """The directory of RabbitMQ's scripts, or None when rabbitmq-server is not installed.

    Debian's and Red Hat's `/usr/sbin/rabbitmq-server` is a wrapper that runs the node as
    the `rabbitmq` user, with that user's home and Erlang cookie, and refuses other users;
    the scripts it wraps run as anyone.
    """
    packaged = Path("/usr/lib/rabbitmq/bin")
    if (packaged / "rabbitmq-server").exists():
        return packaged
    found = shutil.which("rabbitmq-server")
    return Path(found).parent if found else None


def reachable(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class Node:
    """A RabbitMQ node of our own: its name, ports (AMQP, Erlang distribution, and an epmd of
    its own), data, logs and Erlang cookie (a fresh HOME) all private; `stop()` removes them.
    A test may stop and start the broker inside it."""

    def __init__(self) -> None:
        bin_dir = scripts()
        epmd = shutil.which("epmd")
        if bin_dir is None or epmd is None:
            raise RuntimeError("rabbitmq-server (and Erlang's epmd) must be installed")
        self.bin_dir = bin_dir
        self.port = free_port()
        self.name = f"herald-{self.port}@localhost"
        self.base = base = Path(tempfile.mkdtemp(prefix="herald-rabbit-"))
        (base / "enabled_plugins").write_text("[].\n")
        epmd_port = free_port()
        self.env = {
            **os.environ,
            "HOME": str(base),  # Erlang makes a fresh cookie here, for the node and its CLI
            "ERL_EPMD_PORT": str(epmd_port),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": HOST,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            # none of the machine's configuration (its node name, its listeners)
            "RABBITMQ_CONF_ENV_FILE": str(base / "none"),
            "RABBITMQ_CONFIG_FILE": str(base / "none"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "none.config"),
        }
        self.log = (base / "server.out").open("ab")
        self.epmd = subprocess.Popen(
            [epmd, "-port", str(epmd_port), "-address", HOST], stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._wait(lambda: reachable(epmd_port), "epmd", self.epmd, 10)
            self.proc = subprocess.Popen(
                [str(bin_dir / "rabbitmq-server")], env=self.env, cwd=base, stdout=self.log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            self.wait_listening()
        except BaseException:
            self.stop()
            raise
        self.url = self.vhost_url("/")

    def vhost_url(self, vhost: str) -> str:
        return f"amqp://guest:guest@{HOST}:{self.port}/{vhost.replace('/', '%2F')}"

    def rabbitmqctl(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / "rabbitmqctl"), "-n", self.name, *args]
        subprocess.run(command, env=self.env, check=True, capture_output=True, timeout=timeout)

    def add_vhost(self, name: str) -> str:
        """A vhost for guest; returns its URL."""
        self.rabbitmqctl("add_vhost", name)
        self.rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        return self.vhost_url(name)

    def wait_listening(self, within: float = 120) -> None:
        assert self.proc is not None
        self._wait(lambda: reachable(self.port), f"RabbitMQ node {self.name}", self.proc, within)

    def _wait(
        self, ready: Callable[[], bool], what: str, process: subprocess.Popen[bytes], within: float
    ) -> None:
        deadline = time.monotonic() + within
        while not ready():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"{what} did not start; see {self.base / 'server.out'}")
            time.sleep(0.2)

    def stop_app(self) -> None:
        """Stop the broker inside the node: every connection drops; durable data stays."""
        self.rabbitmqctl("stop_app")

    def start_app(self) -> None:
        self.rabbitmqctl("start_app")
        self.wait_listening()

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self.rabbitmqctl("stop")
            _end(self.proc, 30)
        _end(self.epmd, 0)
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)


def _end(process: subprocess.Popen[bytes], grace: float) -> None:
    """Give a process `grace` seconds to exit, then terminate its group, then kill it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            grace = 10
    process.wait()
