"""RabbitMQ for tests and benchmarks: a vhost on the machine's broker, or a node of our own."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import free_port

HOST = "127.0.0.1"
PORT = 5672


def reachable(port: int = PORT) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def rabbitmqctl(*args: str, node: str | None = None, timeout: float = 60) -> None:
    command = ["rabbitmqctl", *(["-n", node] if node else []), *args]
    subprocess.run(command, check=True, capture_output=True, timeout=timeout)


class Vhost:
    """A vhost of the machine's RabbitMQ, so concurrent runs never share a queue."""

    def __init__(self) -> None:
        self.name = f"herald_test_{uuid.uuid4().hex[:10]}"
        rabbitmqctl("add_vhost", self.name)
        rabbitmqctl("set_permissions", "-p", self.name, "guest", ".*", ".*", ".*")
        self.url = f"amqp://guest:guest@{HOST}:{PORT}/{self.name}"

    def delete(self) -> None:
        rabbitmqctl("delete_vhost", self.name)


class Node:
    """A RabbitMQ node of our own (own name, ports and data), which a test may restart.

    The machine's shared broker is never touched. Its data directory (removed on stop)
    belongs to the `rabbitmq` user, as rabbitmq-server drops to it.
    """

    def __init__(self) -> None:
        self.port = _port_pair()
        self.name = f"herald{self.port}@localhost"
        base = self.base = Path(tempfile.mkdtemp(prefix="herald-rabbit-"))
        base.chmod(0o755)
        (base / "enabled_plugins").write_text("[].\n")
        shutil.chown(base, "rabbitmq")
        shutil.chown(base / "enabled_plugins", "rabbitmq")
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "none"),  # not the machine's listeners
        }
        self.log = (base / "server.out").open("ab")
        self.proc = subprocess.Popen(
            ["rabbitmq-server"], env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.wait_listening()
        self.url = f"amqp://guest:guest@{HOST}:{self.port}/%2F"

    def wait_listening(self, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while not reachable(self.port):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {self.name} did not start; see {self.base}")
            time.sleep(0.2)

    def stop_app(self) -> None:
        """Stop the broker inside the node: every connection drops; durable data stays."""
        rabbitmqctl("stop_app", node=self.name)

    def start_app(self) -> None:
        rabbitmqctl("start_app", node=self.name)
        self.wait_listening()

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            rabbitmqctl("stop", node=self.name)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.base, ignore_errors=True)


def _port_pair() -> int:
    """A free AMQP port whose Erlang distribution port (+20000) is free too."""
    while True:
        port = free_port()
        if port + 20_000 < 65_536 and not reachable(port + 20_000):
            return port
