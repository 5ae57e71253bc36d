"""The contacts page below Herald: what the same answer costs from the parts Herald runs on.

    python -m bench.request_floor [--duration 5] [--rounds 3] [--connections 4]

Five servers give the same 20 contacts (checked equal first), one process each, under
the same `wrk -t1 -c4`, rounds alternating:

- **uvicorn**: uvicorn with httptools and uvloop, answering bytes fetched once at start;
- **uvicorn + asyncpg**: the same, with one asyncpg statement per request (a connection
  per client, rows to JSON with orjson), no GraphQL; then again under Herald's HTTP
  protocol (app/http/protocol.py: head bounds, load shedding, head and body in one write);
- **Herald**: `herald serve --workers 1`;
- **PG4**: PostGraphile 4 (bench/peers.py).

The first three are the ASGI app in this module, served by uvicorn. They tell
how fast a Python server on this machine can answer the page at all, so Herald's gap to
them is what its own layers cost (GraphQL, limits, auth, metrics, logging), and the
table says whether a ratio against PostGraphile is out of the stack's reach or Herald's.
Server CPU per request counts the server's process tree, from /proc.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import asyncpg
import orjson
import uvicorn

from app.config import load_settings
from app.http.protocol import server_options
from bench.common import (
    Scale,
    authorization,
    free_port,
    median,
    prepare,
    served,
    server_environment,
    server_process,
    table,
)
from bench.peers import (
    SHAPES,
    Dialect,
    Load,
    Round,
    Server,
    herald,
    measure,
    postgraphile4,
)

# The statement Herald's contacts page runs (app/contacts/repository.py), one row more
# than the page for `hasNextPage`.
STATEMENT = """SELECT id, phone, name, whatsapp_status FROM contacts
ORDER BY id DESC LIMIT $1"""
PAGE = 20
_MODE = "HERALD_BENCH_FLOOR"  # "fixed" or "driver"
_DATABASE = "HERALD_BENCH_FLOOR_DATABASE"


# --- the floor servers (run by uvicorn in a process of their own) ----------------------

_idle: deque[asyncpg.Connection] = deque()
_fixed: list[bytes] = []


async def _page() -> bytes:
    connection = _idle.popleft()
    try:
        records = await connection.fetch(STATEMENT, PAGE + 1)
    finally:
        _idle.append(connection)
    nodes = [
        {"id": r[0], "phone": r[1], "name": r[2], "whatsappStatus": r[3].upper()}
        for r in records[:PAGE]
    ]
    return orjson.dumps({"data": {"contacts": {"nodes": nodes}}})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Any request gets the page: fetched now (`driver`), or once at start (`fixed`)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            for _ in range(8):  # more than the clients wrk keeps open
                _idle.append(await asyncpg.connect(os.environ[_DATABASE]))
            _fixed.append(await _page())
            await send({"type": "lifespan.startup.complete"})
        for connection in _idle:
            await connection.close()
        await send({"type": "lifespan.shutdown.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    body = _fixed[0] if os.environ[_MODE] == "fixed" else await _page()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(port: int, protocol: str) -> None:
    """This module's app under uvicorn with uvloop and no access log: uvicorn's own httptools
    protocol, or Herald's (`server_options`: head bounds, load shedding, one write)."""
    options: dict[str, Any] = {"http": "httptools"}
    if protocol == "herald":
        options = server_options(load_settings())
    uvicorn.run(app, port=port, loop="uvloop", access_log=False, log_level="warning", **options)


@contextmanager
def floor_server(database: str, mode: str, protocol: str = "uvicorn") -> Iterator[str]:
    """`serve` in a process of its own; yields its endpoint."""
    port = free_port()
    command = [sys.executable, "-m", "bench.request_floor", "--serve", str(port), protocol]
    environment = server_environment(database, **{_MODE: mode, _DATABASE: database})
    with served(command, port, environment) as url:
        yield url + "/graphql"  # any path answers; this one as the others'


# --- the run --------------------------------------------------------------------------


def report(runs: dict[str, list[Round]], reference: str) -> str:
    """req/s and CPU per request per server (median, min-max), req/s against `reference`."""
    base = median([r.requests_per_second for r in runs[reference]])
    rows = []
    for label, rounds in runs.items():
        rates = [r.requests_per_second for r in rounds]
        micros = [r.cpu_us for r in rounds if r.cpu_us is not None]
        rows.append(
            [
                label,
                f"{median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})",
                f"{median(rates) / base:.2f}x",
                f"{median(micros):,.0f} ({min(micros):,.0f}-{max(micros):,.0f})",
                sum(r.errors for r in rounds),
            ]
        )
    headers = ["server", "req/s", f"/ {reference}", "server CPU µs per request", "errors"]
    return table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    Load.add_arguments(parser, "rounds per server")
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "PROTOCOL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:  # one of the floor servers, started by the run below
        serve(int(args.serve[0]), args.serve[1])
        return
    load = Load.of(args)
    database = prepare(Scale(20_000, 50, 2_000))
    headers = authorization(database)
    with ExitStack() as stack:
        servers = [
            Server(
                "uvicorn", stack.enter_context(floor_server(database, "fixed")), Dialect.HERALD, {}
            ),
            Server(
                "uvicorn + asyncpg",
                stack.enter_context(floor_server(database, "driver")),
                Dialect.HERALD,
                {},
            ),
            Server(
                "uvicorn + asyncpg, Herald's protocol",
                stack.enter_context(floor_server(database, "driver", "herald")),
                Dialect.HERALD,
                {},
            ),
            herald(stack, database, 1, headers),
            Server("PG4", stack.enter_context(postgraphile4(database)), Dialect.POSTGRAPHILE4, {}),
        ]
        processes = {s.label: server_process(s.endpoint) for s in servers}
        runs = measure(servers, [SHAPES["contacts"]], load, processes)[0].rounds
    print(f"\n**{SHAPES['contacts'].title}**, one process each:\n")
    print(report(runs, "PG4"))
    print(
        f"\n`wrk -t1 -c{load.connections} -d{load.duration}s`, {load.rounds} rounds per server, "
        "alternating; median (min-max) of the rounds."
    )


if __name__ == "__main__":
    main()
