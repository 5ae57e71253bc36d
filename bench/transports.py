"""`python -m bench.transports`: one small query as each client sends it, through `wrk`.

The contacts page (20 rows) POSTed as Apollo sends it, as a GET with urql's `Accept`, and
by its hash (Apollo's persisted queries) over POST and GET, against one `herald serve`
process on the bench database: the server process's CPU time per request (its CPU time over
the requests `wrk -t1 -c<connections> -d<seconds>s` completed: unlike requests per second,
it holds on a machine busy with other work), alternating rounds, medians, and each one's
ratio to the POST. `--baseline DIR` also serves another checkout of Herald (the previous
commit, say) on the same database and POSTs the query to it, for the ratio of this
checkout to that one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

from bench.common import (
    Scale,
    authorization,
    cpu_seconds,
    lua_string,
    median,
    prepare,
    running_server,
    server_process,
    table,
)

QUERY = "query Contacts { contacts(first: 20) { nodes { id phone name whatsappStatus } } }"
APOLLO = "application/graphql-response+json,application/json;q=0.9"
URQL = (
    "application/graphql-response+json, application/graphql+json, application/json, "
    "text/event-stream, multipart/mixed"
)


@dataclass(frozen=True)
class Transport:
    label: str
    method: str
    accept: str
    path: str = "/graphql"
    body: str = ""


def transports() -> list[Transport]:
    digest = hashlib.sha256(QUERY.encode()).hexdigest()
    extensions = json.dumps({"persistedQuery": {"version": 1, "sha256Hash": digest}})
    return [
        Transport("POST (Apollo)", "POST", APOLLO, body=json.dumps({"query": QUERY})),
        Transport("GET (urql)", "GET", URQL, "/graphql?" + urlencode({"query": QUERY})),
        Transport("hash, POST", "POST", APOLLO, body='{"extensions": ' + extensions + "}"),
        Transport("hash, GET", "GET", APOLLO, "/graphql?" + urlencode({"extensions": extensions})),
    ]


# Counts answers that are not a 200 without errors; prints one parseable line.
_REPORT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors":', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("bad") end
  io.write(string.format("wrk-result %d %d %d\\n", summary.requests, summary.duration, total))
end
"""


def wrk(
    base: str, transport: Transport, headers: Mapping[str, str], seconds: int, connections: int
) -> float:
    """The server's CPU microseconds per request; refuses a run with any error."""
    server = server_process(base)
    before = cpu_seconds(server)
    lines = [
        f"wrk.method = {lua_string(transport.method)}",
        f"wrk.path = {lua_string(transport.path)}",
    ]
    if transport.body:
        lines.append(f"wrk.body = {lua_string(transport.body)}")
    sent = {"Accept": transport.accept, "Content-Type": "application/json", **headers}
    lines += [f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in sent.items()]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write("\n".join(lines) + _REPORT)
        script.flush()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script.name, base]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    summary = next(line for line in out.splitlines() if line.startswith("wrk-result"))
    requests, _, bad = summary.split()[1:]
    if int(bad):
        raise RuntimeError(f"{transport.label}: {bad} answers were not a clean 200")
    return (cpu_seconds(server) - before) * 1e6 / int(requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--baseline", type=Path, help="another checkout of Herald to compare")
    args = parser.parse_args()
    database = prepare(Scale(20_000, 50, 2_000))
    headers = authorization(database)
    with ExitStack() as stack:
        base = stack.enter_context(running_server(database))
        runs: dict[str, list[float]] = {t.label: [] for t in transports()}
        servers = [(base, t) for t in transports()]
        if args.baseline is not None:
            other = stack.enter_context(running_server(database, checkout=args.baseline))
            runs["POST (Apollo), baseline"] = []
            apollo = transports()[0]
            servers.append(
                (other, Transport(f"{apollo.label}, baseline", "POST", APOLLO, body=apollo.body))
            )
        # the hash registered, as Apollo's link does on its first not-found
        registered = {"query": QUERY, **json.loads(transports()[2].body)}
        httpx.post(base + "/graphql", json=registered, headers=headers).raise_for_status()
        for url, transport in servers:  # warm-up
            wrk(url, transport, headers, 2, args.connections)
        for _ in range(args.rounds):
            for url, transport in servers:
                runs[transport.label].append(
                    wrk(url, transport, headers, args.seconds, args.connections)
                )
                print(f"{transport.label}: {runs[transport.label][-1]:,.0f} µs", file=sys.stderr)
    post = median(runs["POST (Apollo)"])
    rows = [
        (label, f"{median(r):,.0f}", f"{min(r):,.0f}-{max(r):,.0f}", f"{median(r) / post:.3f}")
        for label, r in runs.items()
    ]
    print(table(["sent as", "server CPU µs/request", "range", "vs POST"], rows))


if __name__ == "__main__":
    main()
