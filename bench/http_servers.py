"""The HTTP server under Herald: `herald serve` (uvicorn, httptools, uvloop, Herald's own
protocol class) against granian serving the same ASGI app, one process each.

    python -m bench.http_servers [--duration 5] [--rounds 3] [--connections 4]

Both run `app.main:create_app` on the seeded bench database with the same settings; wrk
(`-t1 -c4`) loads one server at a time, rounds alternating, on three shapes: `{ __typename }`
(the request cycle alone), the contacts page (20 rows) and a small nested page (5
campaigns x 10 messages x contact). Each cell gives requests per second and the server's
CPU microseconds per request: the user and system time of its process and of every
process it started, over the round. Granian's I/O runs on threads of its own (Rust), so a
process can use more than one core; the CPU column shows what that costs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil

from bench.common import (
    Scale,
    authorization,
    cpu_seconds,
    free_port,
    lua_string,
    median,
    prepare,
    running_server,
    served,
    server_environment,
    server_process,
    table,
)

SHAPES = {
    "{ __typename }": "{ __typename }",
    "contacts page (20)": "{ contacts(first: 20) { nodes { id phone name whatsappStatus } } }",
    "5 campaigns x 10 messages x contact": """{ campaigns(first: 5) { nodes { id name
        messages(first: 10) { nodes { id status contact { id phone name } } } } } }""",
}


@contextmanager
def granian(database: str) -> Iterator[str]:
    """granian serving Herald's ASGI app in one worker process, uvloop, no access log (Herald
    writes its own); yields its base URL. Its main process starts the worker."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("granian")), "--interface", "asgi"]
    command += ["--factory", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--loop", "uvloop", "--no-access-log", "--log-level", "warning"]
    environment = server_environment(database, HERALD_LOG_LEVEL="WARNING")
    with served([*command, "app.main:create_app"], port, environment) as url:
        yield url


def run(
    url: str,
    server: psutil.Process,
    document: str,
    headers: Mapping[str, str],
    seconds: int,
    connections: int,
) -> tuple[float, float]:
    """One wrk round: requests per second and server CPU µs per request; any non-2xx
    answer stops the run."""
    body = json.dumps({"query": document})
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body)}"]
    all_headers = {"Content-Type": "application/json", **headers}
    lines += [f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in all_headers.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="herald-servers-") as script:
        script.write("\n".join(lines))
        script.flush()
        before = cpu_seconds(server)
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name]
        output = subprocess.run(
            [*command, url + "/graphql"], capture_output=True, text=True, check=True
        ).stdout
        spent = cpu_seconds(server) - before
    if "Non-2xx" in output:
        raise RuntimeError(f"{url}: answers that were not 2xx\n{output}")
    requests = int(output.split(" requests in ")[0].split()[-1])
    rate = float(output.split("Requests/sec:")[1].split()[0])
    return rate, spent * 1e6 / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4, help="wrk -c")
    args = parser.parse_args()
    database = prepare(Scale(20_000, 50, 2_000))
    headers = authorization(database)
    rows = []
    with ExitStack() as stack:
        uvicorn_url = stack.enter_context(
            running_server(database, 1, None, HERALD_LOG_LEVEL="WARNING")
        )
        granian_url = stack.enter_context(granian(database))
        granian_main = server_process(granian_url)
        while granian_main.parent() is not None and "granian" in granian_main.parent().name():
            granian_main = granian_main.parent()
        servers = {
            "uvicorn (herald serve)": (uvicorn_url, server_process(uvicorn_url)),
            "granian (ASGI)": (granian_url, granian_main),
        }
        for shape, document in SHAPES.items():
            results: dict[str, list[tuple[float, float]]] = {label: [] for label in servers}
            for url, process in servers.values():
                run(url, process, document, headers, 1, args.connections)  # warm-up
            for _ in range(args.rounds):
                for label, (url, process) in servers.items():
                    results[label].append(
                        run(url, process, document, headers, args.duration, args.connections)
                    )
            rates = {label: median([r for r, _ in runs]) for label, runs in results.items()}
            cpus = {label: median([c for _, c in runs]) for label, runs in results.items()}
            uvicorn, other = list(servers)
            rows.append(
                [shape]
                + [f"{rates[label]:,.0f} req/s, {cpus[label]:,.0f} µs" for label in servers]
                + [f"{rates[other] / rates[uvicorn]:.2f}x", f"{cpus[other] / cpus[uvicorn]:.2f}x"]
            )
    labels = list(servers)
    print(table(["shape", *labels, "req/s ratio", "CPU/request ratio"], rows))
    print(
        f"\n`wrk -t1 -c{args.connections} -d{args.duration}s`, {args.rounds} rounds per server "
        "and shape, alternating; medians of the rounds; ratios: granian / uvicorn."
    )


if __name__ == "__main__":
    main()
