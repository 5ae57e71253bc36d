"""Where one request's server CPU goes, phase by phase.

    python -m bench.budget [--duration 10] [--shapes typename contacts page nested dashboard]

`herald serve --workers 1` runs on the seeded bench database; for each shape `wrk -t1 -c4`
loads it while py-spy (the `bench` extra) samples the server's stacks 1,000 times a
second. Each sample is charged to the innermost phase found on its stack; the server's
CPU time per request comes from /proc. The table gives each phase's share of the samples
applied to that time. Needs `wrk` (Debian package) and permission to trace a child
process (root, or `kernel.yama.ptrace_scope` 0 or 1).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from bench.common import Scale, authorization, prepare, running_server, table
from bench.peers import Dialect, Server, Shape, lua_script

SHAPES = {
    "typename": "{ __typename }",
    "contacts": "{ contacts(first: 20) { nodes { id: databaseId phone name whatsappStatus } } }",
    "page": """{ campaigns(first: 5) { nodes { id name messages(first: 10) {
        nodes { id status contact { id phone name } } } } } }""",
    "nested": """{ campaigns(first: 10) { nodes { id messages(first: 100) {
        nodes { id status contact { id phone name } } } } } }""",
    "dashboard": "{ dashboard { contactCount campaignCount messageStats { total sent } } }",
}

_MIDDLEWARE = (
    "app/observability/requests.py",
    "app/http/limits.py",
    "app/observability/metrics.py",
    "starlette/",
    "prometheus_client/",
)
# (phase, files whose frames belong to it); the innermost frame that matches names it.
PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("PostgreSQL: driver and read pool", ("asyncpg/", "app/db/engine.py")),
    ("Redis: client and cache", ("redis/", "app/cache/", "app/http/ratelimit.py", "schema/cache/")),
    ("rows to objects (loaders' generated builders)", ("<herald row builder:",)),
    ("response building (the plan's generated code)", ("<herald plan:",)),
    ("plan: waves, batches, resolver calls", ("schema/execution/plans/",)),
    ("executor build, limits", ("graphql/", "schema/limits/", "schema/execution/executor.py")),
    ("transaction boundary, statement count", ("schema/extensions.py",)),
    ("planned path: body, JSON, plan lookup, encode", ("schema/execution/endpoint.py",)),
    ("middleware: request id, metrics, body limit", _MIDDLEWARE),
    (
        "resolvers, loaders, repositories, auth",
        (
            "schema/",
            "loaders/",
            "app/",
            "strawberry/",
            "aiodataloader/",
            "sqlalchemy/",
        ),
    ),
    ("HTTP server (uvicorn) and event loop", ("uvicorn/", "asyncio/", "uvloop/")),
]
# "name (file:line)"; generated code's file names hold colons (app/codegen.py).
_FRAME = re.compile(r"^(?P<name>[^ ]*) \((?P<file>.*?)(?::\d+)?\)$")


def _phase(stack: list[str]) -> str:
    for frame in reversed(stack):
        found = _FRAME.match(frame)
        where = found["file"] if found else ""
        for phase, files in PHASES:
            if any(where.startswith(prefix) or f"/{prefix}" in where for prefix in files):
                return phase
    return PHASES[-1][0]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_pid(port: str) -> int:
    """The uvicorn process of `herald serve --workers 1` listening on `port`."""
    out = subprocess.run(
        ["pgrep", "-f", f"herald serve --workers 1 --port {port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0])


def measure(
    url: str, headers: dict[str, str], shape: str, duration: int
) -> tuple[float, Counter[str]]:
    server = Server("Herald", url + "/graphql", Dialect.HERALD, headers)
    pid = _server_pid(url.rsplit(":", 1)[1])
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "load.lua"
        script.write_text(lua_script(server, Shape(shape, {Dialect.HERALD: SHAPES[shape]})))
        wrk = ["wrk", "-t1", "-c4", f"-d{duration + 2}s", "-s", str(script), server.endpoint]
        subprocess.run([*wrk[:3], "-d2s", *wrk[4:]], capture_output=True, check=True)  # warm
        raw = Path(folder) / "samples.txt"
        load = subprocess.Popen(wrk, stdout=subprocess.PIPE, text=True)
        before = _cpu_seconds(pid)
        subprocess.run(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(duration),
                "--rate",
                "1000",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(raw),
            ],
            capture_output=True,
            check=True,
        )
        cpu = _cpu_seconds(pid) - before
        output, _ = load.communicate()
        total = int(re.search(r"(\d+) requests in ([\d.]+)s", output)[1])  # type: ignore[index]
        per_second = total / (duration + 2)
        samples: Counter[str] = Counter()
        # Sampling without pausing the process can read a frame name mid-change, newlines
        # included: such a stack spans lines, and only its last line ends with the count.
        pending = ""
        for line in raw.read_text().splitlines():
            stack, _, count = (pending + line).rpartition(" ")
            if not count.isdigit():
                pending += line
                continue
            pending = ""
            samples[_phase(stack.split(";"))] += int(count)
    return cpu / (per_second * duration), samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds sampled per shape")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed to drive the load: apt-get install wrk")
    database = prepare(Scale(20_000, 50, 2_000))
    headers = authorization(database)
    results = {}
    with running_server(database, 1, HERALD_LOG_LEVEL="WARNING") as url:
        for shape in args.shapes:
            results[shape] = measure(url, headers, shape, args.duration)
    columns = [f"{shape} µs (share)" for shape in args.shapes]
    rows = []
    for phase, _ in PHASES:
        cells = []
        for shape in args.shapes:
            cpu, samples = results[shape]
            share = samples[phase] / max(1, sum(samples.values()))
            cells.append(f"{share * cpu * 1e6:,.0f} ({share:.0%})")
        rows.append([phase, *cells])
    rows.append(
        ["**server CPU per request**", *(f"{results[s][0] * 1e6:,.0f}" for s in args.shapes)]
    )
    print(table(["phase", *columns], rows))
    print(json.dumps({s: round(results[s][0] * 1e6) for s in args.shapes}), file=sys.stderr)
    print(
        f"\n`herald serve --workers 1`, `wrk -t1 -c4`, py-spy at 1 kHz for {args.duration} s "
        "per shape; CPU per request from /proc; shares from the samples."
    )


if __name__ == "__main__":
    main()
