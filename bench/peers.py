"""Herald against PostGraphile 4 and 5: same database, same rows asked for, same load.

    python -m bench.peers [--duration 5] [--rounds 3] [--connections 4]
                          [--shapes nested page contacts] [--one-process-only]
                          [--against HEAD~1 | --no-mix]

PostGraphile compiles a whole GraphQL query into one SQL statement and is the peer
to beat. Three servers run side by side on the seeded bench database (20,000
contacts, 50 campaigns x 2,000 messages), ONE process each: `herald serve --workers
1`, PostGraphile 4 on the machine's Node.js, PostGraphile 5 (Amber preset) on the
Node.js 22 that npm installs next to it. PostGraphile is installed from the npm
registry into bench/peers/ (v4) and bench/peers/v5/ on first use.

Load comes from `wrk` (Debian package `wrk`), a C load generator, so the client
does not compete with the servers for a Python core: `wrk -t1 -c4 -d<N>s
--latency` with a Lua script that POSTs the document. Only one server is under load
at a time; rounds alternate between them (Herald, PG4, PG5, Herald, ...) after a
short warm-up of each, so that noise from the rest of the machine falls on all of
them alike. Before any load, each server's answer is fetched once and compared:
the same number of scalar leaves and the same ids in the same nesting (campaigns
newest first, their messages newest first, each message's contact), or the run
stops.

The first table is one process each, with each server's CPU time per request (its
process tree) and PostgreSQL's (the backends connected to the bench database, when
PostgreSQL runs on this machine). A second table always follows (unless
`--one-process-only`): `herald serve --workers 2` against PostGraphile 4 with
`--cluster-workers 2`, with PostgreSQL's CPU per request. Cells are the median of the
rounds (min-max); ratios are medians over medians with the range of the per-round
ratios (each round's servers ran back to back). Last, unless `--no-mix`, the
read/write mix of bench/mixed.py against Herald at `--against` (a git revision), on a
copy of the database. HERALD_* variables in the environment reach `herald serve`, so
`HERALD_FAST_EXECUTION=false python -m bench.peers` measures the standard path; Herald
logs warnings only unless HERALD_LOG_LEVEL says otherwise, as PostGraphile runs with no
per-request log.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import mixed
from bench.common import (
    Scale,
    authorization,
    cpu_seconds,
    database_cpu,
    database_cpu_used,
    free_port,
    lua_string,
    median,
    prepare,
    running_server,
    server_process,
    table,
)

PEERS = Path(__file__).with_name("peers")
V4 = PEERS
V4_CLI = V4 / "node_modules" / "postgraphile" / "cli.js"
V5 = PEERS / "v5"
V5_NODE = V5 / "node_modules" / "node" / "bin" / "node"  # the npm package node@22
V5_CLI = V5 / "node_modules" / "postgraphile" / "dist" / "cli-run.js"


class Dialect(Enum):
    """Whose naming a document uses."""

    HERALD = "herald"
    POSTGRAPHILE4 = "postgraphile4"
    POSTGRAPHILE5 = "postgraphile5"


@dataclass(frozen=True)
class Shape:
    """One request shape, written for each server's naming, asking for the same rows.

    PostGraphile 4 names the primary key column `id`; PostGraphile 5's Amber preset
    calls it `rowId` and Herald `databaseId` (their `id` is the global node id), so their
    documents alias it back.
    """

    title: str
    documents: Mapping[Dialect, str]


SHAPES: dict[str, Shape] = {
    "nested": Shape(
        "10 campaigns x 100 messages x contact",
        {
            Dialect.HERALD: """{ campaigns(first: 10) { nodes { id: databaseId
                messages(first: 100) { nodes { id: databaseId status
                contact { id: databaseId phone name } } } } } }""",
            Dialect.POSTGRAPHILE4: """{ allCampaigns(first: 10, orderBy: ID_DESC) { nodes { id
                messagesByCampaignId(first: 100, orderBy: ID_DESC) {
                nodes { id status contactByContactId { id phone name } } } } } }""",
            Dialect.POSTGRAPHILE5: """{ allCampaigns(first: 10, orderBy: ROW_ID_DESC) {
                nodes { id: rowId
                messagesByCampaignId(first: 100, orderBy: ROW_ID_DESC) {
                nodes { id: rowId status
                contactByContactId { id: rowId phone name } } } } } }""",
        },
    ),
    "page": Shape(
        "5 campaigns x 10 messages x contact",
        {
            Dialect.HERALD: """{ campaigns(first: 5) { nodes { id: databaseId name
                messages(first: 10) { nodes { id: databaseId status
                contact { id: databaseId phone name } } } } } }""",
            Dialect.POSTGRAPHILE4: """{ allCampaigns(first: 5, orderBy: ID_DESC) { nodes { id name
                messagesByCampaignId(first: 10, orderBy: ID_DESC) {
                nodes { id status contactByContactId { id phone name } } } } } }""",
            Dialect.POSTGRAPHILE5: """{ allCampaigns(first: 5, orderBy: ROW_ID_DESC) {
                nodes { id: rowId name
                messagesByCampaignId(first: 10, orderBy: ROW_ID_DESC) {
                nodes { id: rowId status
                contactByContactId { id: rowId phone name } } } } } }""",
        },
    ),
    "contacts": Shape(
        "contacts page (20)",
        {
            Dialect.HERALD: """{ contacts(first: 20) {
                nodes { id: databaseId phone name whatsappStatus } } }""",
            Dialect.POSTGRAPHILE4: """{ allContacts(first: 20, orderBy: ID_DESC) {
                nodes { id phone name whatsappStatus } } }""",
            Dialect.POSTGRAPHILE5: """{ allContacts(first: 20, orderBy: ROW_ID_DESC) {
                nodes { id: rowId phone name whatsappStatus } } }""",
        },
    ),
}


@dataclass(frozen=True)
class Server:
    """A running GraphQL endpoint and the naming its documents use."""

    label: str
    endpoint: str
    dialect: Dialect
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Round:
    """What `wrk` reported for one run against one server."""

    requests_per_second: float
    p50_ms: float
    errors: int  # non-2xx responses, socket errors (connect, read, write, timeout), GraphQL errors
    cpu_us: float | None = None  # the server's CPU per request, when `measure` was asked to
    database_cpu_us: float | None = None  # PostgreSQL's, likewise


@dataclass(frozen=True)
class Load:
    """How hard and how long: wrk -c, seconds per round and warm-up, rounds per server."""

    rounds: int
    duration: int
    warmup: int
    connections: int

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser, rounds: str) -> None:
        """--duration, --rounds (`rounds` says of what), --warmup, --connections."""
        parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
        parser.add_argument("--rounds", type=int, default=3, help=rounds)
        parser.add_argument("--warmup", type=int, default=2, help="seconds of wrk before rounds")
        parser.add_argument("--connections", type=int, default=4, help="wrk -c")

    @classmethod
    def of(cls, args: argparse.Namespace) -> Load:
        return cls(args.rounds, args.duration, args.warmup, args.connections)


_STARTED = time.monotonic()


def progress(message: str) -> None:
    """A line on stderr with the seconds since start, so a slow phase shows."""
    print(f"[{time.monotonic() - _STARTED:5.0f} s] {message}", file=sys.stderr)


# --- PostGraphile -------------------------------------------------------------------


def _install(folder: Path, marker: Path) -> None:
    """`npm install` into `folder` once (package-lock.json pins the versions)."""
    if marker.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to install PostGraphile: apt-get install npm")
    progress(f"installing {folder.relative_to(PEERS.parent)} from npm")
    subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=folder, check=True)
    if not marker.exists():
        raise SystemExit(f"npm install in {folder} did not produce {marker}")


def _version(package: Path) -> str:
    return str(json.loads((package / "package.json").read_text())["version"])


def _node_version(node: str) -> str:
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()


@contextmanager
def _node_server(command: list[str], cwd: Path, endpoint: str) -> Iterator[None]:
    environment = {**os.environ, "NODE_ENV": "production", "GRAPHILE_ENV": "production"}
    process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.post(endpoint, json={"query": "{ __typename }"}).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(command[:2])} did not start") from None
                time.sleep(0.3)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is needed to run PostGraphile 4: apt-get install nodejs")
    return node


@contextmanager
def postgraphile4(database: str, cluster_workers: int = 1) -> Iterator[str]:
    """PostGraphile 4 on the machine's `node`; yields its GraphQL endpoint."""
    _install(V4, V4_CLI)
    port = free_port()
    command = [_node(), str(V4_CLI), "--connection", database, "--schema", "public"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--disable-query-log", "--disable-graphiql"]
    if cluster_workers > 1:
        command += ["--cluster-workers", str(cluster_workers)]
    endpoint = f"http://127.0.0.1:{port}/graphql"
    with _node_server(command, V4, endpoint):
        yield endpoint


@contextmanager
def postgraphile5(database: str) -> Iterator[str]:
    """PostGraphile 5 on Node.js 22; graphile.config.mjs picks the Amber preset and turns
    GraphiQL off (the CLI has no flag for it). Yields its GraphQL endpoint."""
    _install(V5, V5_NODE)
    port = free_port()
    command = [str(V5_NODE), str(V5_CLI), "--config", str(V5 / "graphile.config.mjs")]
    command += ["--connection", database, "--schema", "public"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    endpoint = f"http://127.0.0.1:{port}/graphql"
    with _node_server(command, V5, endpoint):
        yield endpoint


# --- equal answers ------------------------------------------------------------------


def leaves(value: Any) -> int:
    """How many scalar leaves (nulls included) an answer holds."""
    if isinstance(value, dict):
        return sum(leaves(child) for child in value.values())
    if isinstance(value, list):
        return sum(leaves(child) for child in value)
    return 1


def skeleton(value: Any) -> Any:
    """The ids of an answer in their nesting and order, whatever the fields are called."""
    if isinstance(value, list):
        return [skeleton(child) for child in value]
    if isinstance(value, dict):
        nested = [skeleton(child) for child in value.values() if isinstance(child, dict | list)]
        return [str(value["id"]) if "id" in value else None, nested]
    return None


def answer(server: Server, shape: Shape) -> dict[str, Any]:
    response = httpx.post(
        server.endpoint,
        json={"query": shape.documents[server.dialect]},
        headers=dict(server.headers),
        timeout=30,
    )
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    if body.get("errors") or not isinstance(body.get("data"), dict):
        raise SystemExit(f"{server.label} answered {shape.title!r} with errors: {body}")
    data: dict[str, Any] = body["data"]
    return data


def check_equal(servers: Sequence[Server], shape: Shape) -> int:
    """The leaf count all servers agree on; stops the run if any answer differs."""
    answers = {server.label: answer(server, shape) for server in servers}
    counts = {label: leaves(data) for label, data in answers.items()}
    skeletons = {label: skeleton(data) for label, data in answers.items()}
    reference = servers[0].label
    for label in answers:
        if counts[label] != counts[reference]:
            raise SystemExit(f"{shape.title}: leaf counts differ: {counts}")
        if skeletons[label] != skeletons[reference]:
            raise SystemExit(
                f"{shape.title}: {label} returns other rows than {reference} "
                "(ids or their order differ)"
            )
    if counts[reference] <= 1:
        raise SystemExit(f"{shape.title}: empty answers; is the bench database seeded?")
    return counts[reference]


# --- load ---------------------------------------------------------------------------

_RESULT = "wrk-result"

# Runs in wrk: each thread counts answers that carry GraphQL errors with a 2xx status (wrk
# counts 4xx and 5xx itself); done() adds wrk's counts and prints one line for wrk() to read.
_COUNT_AND_REPORT = f"""
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) graphql_errors = 0 end
function response(status, headers, body)
  if status < 400 and body and string.find(body, '"errors":', 1, true) then
    graphql_errors = graphql_errors + 1
  end
end
function done(summary, latency, requests)
  local graphql = 0
  for _, thread in ipairs(threads) do graphql = graphql + thread:get("graphql_errors") end
  local e = summary.errors
  io.write(string.format("{_RESULT} %d %d %d %d %d %d %d %d %f\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    graphql, latency:percentile(50)))
end
"""


def lua_script(server: Server, shape: Shape) -> str:
    """A wrk script that POSTs the shape's document and prints a parseable summary."""
    body = json.dumps({"query": shape.documents[server.dialect]})
    headers = {"Content-Type": "application/json", **server.headers}
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body)}"]
    lines += [f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _COUNT_AND_REPORT


def wrk(server: Server, shape: Shape, duration: int, connections: int) -> Round:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="herald-peers-") as script:
        script.write(lua_script(server, shape))
        script.flush()
        command = [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "30s",  # a slow answer is a slow answer, not an error missing from the latencies
            "-s",
            script.name,
            server.endpoint,
        ]
        finished = subprocess.run(command, capture_output=True, text=True, check=True)
    summary = next(
        (line for line in finished.stdout.splitlines() if line.startswith(_RESULT)), None
    )
    if summary is None:
        raise RuntimeError(f"wrk printed no summary: {finished.stdout}{finished.stderr}")
    requests, micros, *errors, p50_us = summary.split()[1:]
    return Round(
        requests_per_second=int(requests) / (int(micros) / 1e6),
        p50_ms=float(p50_us) / 1000,
        errors=sum(int(count) for count in errors),
    )


@dataclass(frozen=True)
class Measured:
    shape: Shape
    leaves: int
    rounds: dict[str, list[Round]]  # by server label, in the order they ran


def measure(
    servers: Sequence[Server],
    shapes: Sequence[Shape],
    load: Load,
    processes: Mapping[str, psutil.Process] | None = None,
    database: str | None = None,
) -> list[Measured]:
    """Per shape: answers checked equal, a warm-up of each server, then alternating rounds;
    with the servers' `processes` (by label), each round's server CPU per request too, and
    with the `database` they serve, PostgreSQL's."""
    measured = []
    for shape in shapes:
        count = check_equal(servers, shape)
        progress(f"{shape.title}: {count:,} scalar leaves in every answer, same ids")
        for server in servers:
            wrk(server, shape, load.warmup, load.connections)
        runs: dict[str, list[Round]] = {server.label: [] for server in servers}
        for number in range(1, load.rounds + 1):
            for server in servers:
                process = None if processes is None else processes[server.label]
                before = 0.0 if process is None else cpu_seconds(process)
                backends = None if database is None else database_cpu(database)
                result = wrk(server, shape, load.duration, load.connections)
                requests = result.requests_per_second * load.duration
                if process is not None:
                    used = cpu_seconds(process) - before
                    result = replace(result, cpu_us=used * 1e6 / requests)
                if database is not None:
                    spent = database_cpu_used(backends, database_cpu(database))
                    if spent is not None:
                        result = replace(result, database_cpu_us=spent * 1e6 / requests)
                runs[server.label].append(result)
                cpu = "" if result.cpu_us is None else f", {result.cpu_us:,.0f} µs CPU per request"
                if result.database_cpu_us is not None:
                    cpu += f", PostgreSQL {result.database_cpu_us:,.0f} µs"
                progress(
                    f"{shape.title}, round {number}/{load.rounds}, {server.label}: "
                    f"{result.requests_per_second:.1f} req/s, p50 {result.p50_ms:.1f} ms{cpu}"
                    + (f", {result.errors} errors" if result.errors else "")
                )
        measured.append(Measured(shape, count, runs))
    return measured


# --- report -------------------------------------------------------------------------


def _spread(values: Sequence[float], digits: int = 1) -> str:
    return f"{median(values):,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def _ratio(ours: Sequence[Round], theirs: Sequence[Round]) -> str:
    paired = [
        a.requests_per_second / b.requests_per_second for a, b in zip(ours, theirs, strict=True)
    ]
    overall = median([r.requests_per_second for r in ours]) / median(
        [r.requests_per_second for r in theirs]
    )
    return f"{overall:.2f}x ({min(paired):.2f}-{max(paired):.2f})"


def _per_server(runs: Mapping[str, Sequence[Round]], labels: Sequence[str], field: str) -> str:
    """The median of `field` for each server, "a / b / c"; "-" where it was not measured."""
    cells = []
    for label in labels:
        values = [getattr(r, field) for r in runs[label]]
        cells.append("-" if None in values else f"{median(values):,.0f}")
    return " / ".join(cells)


def report(measured: Sequence[Measured], labels: Sequence[str]) -> str:
    """A Markdown table: req/s per server, Herald's ratio to each peer, p50s, CPU per request
    (where it was measured), errors."""
    herald, peers = labels[0], labels[1:]
    every = [r for item in measured for runs in item.rounds.values() for r in runs]
    cpu = [
        (field, title)
        for field, title in (("cpu_us", "server"), ("database_cpu_us", "PostgreSQL"))
        if any(getattr(r, field) is not None for r in every)
    ]
    headers = [
        "shape",
        "scalar leaves",
        *(f"{label} req/s" for label in labels),
        *(f"{herald} / {peer}" for peer in peers),
        f"p50 ms {' / '.join(labels)}",
        *(f"{title} CPU µs per request" for _, title in cpu),
        "errors",
    ]
    rows = []
    for item in measured:
        runs = item.rounds
        rows.append(
            [
                item.shape.title,
                f"{item.leaves:,}",
                *(_spread([r.requests_per_second for r in runs[label]]) for label in labels),
                *(_ratio(runs[herald], runs[peer]) for peer in peers),
                " / ".join(f"{median([r.p50_ms for r in runs[label]]):.1f}" for label in labels),
                *(_per_server(runs, labels, field) for field, _ in cpu),
                " / ".join(str(sum(r.errors for r in runs[label])) for label in labels),
            ]
        )
    return table(headers, rows)


def _herald_environment() -> str:
    """HERALD_* settings passed through to `herald serve` (no URLs or secrets)."""
    hidden = ("URL", "SECRET", "KEY", "TOKEN", "PASSWORD")
    chosen = [
        f"{name}={value}"
        for name, value in sorted(os.environ.items())
        if name.startswith("HERALD_")
        and not name.startswith("HERALD_BENCH_")
        and not any(word in name for word in hidden)
    ]
    return " ".join(chosen) or "defaults"


def herald(stack: ExitStack, database: str, workers: int, headers: Mapping[str, str]) -> Server:
    """`herald serve --workers N`, logging warnings only, as PostGraphile runs without a
    per-request log (a setting of the caller's HERALD_LOG_LEVEL wins)."""
    level = os.environ.get("HERALD_LOG_LEVEL", "WARNING")
    base = stack.enter_context(running_server(database, workers, HERALD_LOG_LEVEL=level))
    return Server("Herald", base + "/graphql", Dialect.HERALD, headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    Load.add_arguments(parser, "rounds per server and shape")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument(
        "--one-process-only",
        action="store_true",
        help="skip the second table (herald --workers 2 against PostGraphile 4 with 2 workers)",
    )
    parser.add_argument("--against", default="HEAD~1", help="the commit the mix compares with")
    parser.add_argument("--no-mix", action="store_true", help="skip the read/write mix")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed to drive the load: apt-get install wrk")
    shapes = [SHAPES[key] for key in args.shapes]
    load = Load.of(args)

    database = prepare(Scale(20_000, 50, 2_000))
    headers = authorization(database)

    progress("one process each: starting the servers")
    with ExitStack() as stack:
        servers = [
            herald(stack, database, 1, headers),
            Server("PG4", stack.enter_context(postgraphile4(database)), Dialect.POSTGRAPHILE4, {}),
            Server("PG5", stack.enter_context(postgraphile5(database)), Dialect.POSTGRAPHILE5, {}),
        ]
        processes = {server.label: server_process(server.endpoint) for server in servers}
        single = measure(servers, shapes, load, processes, database)
    paired: list[Measured] = []
    if not args.one_process_only:
        progress("two processes each: starting the servers")
        with ExitStack() as stack:
            cluster = stack.enter_context(postgraphile4(database, cluster_workers=2))
            servers = [
                herald(stack, database, 2, headers),
                Server("PG4", cluster, Dialect.POSTGRAPHILE4, {}),
            ]
            # Each runs several processes: PostgreSQL's share only.
            paired = measure(servers, shapes, load, database=database)

    pg4 = f"PostGraphile {_version(V4_CLI.parent)} (Node.js {_node_version(_node())})"
    pg5 = f"PostGraphile {_version(V5_CLI.parent.parent)} (Node.js {_node_version(str(V5_NODE))})"
    print(f"\n**One process each**: `herald serve --workers 1`; PG4: {pg4}; PG5: {pg5},")
    print("Amber preset.\n")
    print(report(single, ["Herald", "PG4", "PG5"]))
    if paired:
        print(f"\n**Two processes each**: `herald serve --workers 2`; PG4: {pg4},")
        print("`--cluster-workers 2`.\n")
        print(report(paired, ["Herald", "PG4"]))
    if not args.no_mix:
        progress(f"the read/write mix, this checkout against {args.against}")
        print("\n**A read/write mix**, one process each (bench/mixed.py).\n")
        print(mixed.measure(database, args.against, 2 * load.duration, load.rounds, 16))
    print(
        f"\n`wrk -t1 -c{load.connections} -d{load.duration}s`, {load.rounds} rounds per server "
        "and shape, alternating; req/s: median (min-max) of the rounds; ratios: of the medians "
        "(min-max of the per-round ratios); errors: non-2xx responses, socket errors and answers "
        "with GraphQL errors. "
        f"Herald settings: {_herald_environment()}. "
        f"{time.monotonic() - _STARTED:.0f} s in all."
    )


if __name__ == "__main__":
    main()
