"""Herald against PostGraphile 4 on the same database, same queries, same load.

    python -m bench.peers [--requests 300] [--concurrency 4]

PostGraphile compiles a whole GraphQL query into one SQL statement and is the peer
to beat. It is installed from the npm registry into bench/peers/node_modules on
first use. Both servers answer equivalent documents over HTTP on loopback, driven by
the same client at the same concurrency; the table gives requests/s and latency.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.__main__ import drive
from bench.common import (
    Scale,
    authorization,
    free_port,
    median,
    percentile,
    prepare,
    running_server,
    table,
)

PEERS = Path(__file__).with_name("peers")

QUERIES = {
    "10 campaigns x 100 messages x contact": (
        """{ campaigns(first: 10) { nodes { id messages(first: 100) {
              nodes { id status contact { id phone name } } } } } }""",
        """{ allCampaigns(first: 10, orderBy: ID_DESC) { nodes { id
              messagesByCampaignId(first: 100, orderBy: ID_DESC) {
              nodes { id status contactByContactId { id phone name } } } } } }""",
    ),
    "5 campaigns x 10 messages (small page)": (
        """{ campaigns(first: 5) { nodes { id name messages(first: 10) {
              nodes { id status contact { id phone name } } } } } }""",
        """{ allCampaigns(first: 5, orderBy: ID_DESC) { nodes { id name
              messagesByCampaignId(first: 10, orderBy: ID_DESC) {
              nodes { id status contactByContactId { id phone name } } } } } }""",
    ),
    "contacts page (20)": (
        "{ contacts(first: 20) { nodes { id phone name whatsappStatus } } }",
        "{ allContacts(first: 20, orderBy: ID_DESC) { nodes { id phone name whatsappStatus } } }",
    ),
}


@contextmanager
def postgraphile(database: str) -> Iterator[str]:
    binary = PEERS / "node_modules" / ".bin" / "postgraphile"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm is needed to install PostGraphile (apt-get install npm)")
        subprocess.run(
            [npm, "install", "--silent", "--no-audit", "--no-fund"], cwd=PEERS, check=True
        )
    port = free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "--connection",
            database,
            "--schema",
            "public",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--disable-query-log",
            "--disable-graphiql",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.post(url + "/graphql", json={"query": "{ __typename }"}).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("postgraphile did not start") from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def _no_variables() -> dict[str, Any]:
    return {}


def measure(
    url: str, headers: dict[str, str], query: str, concurrency: int, requests: int
) -> tuple[float, float, float, int]:
    asyncio.run(drive(url, headers, query, _no_variables, concurrency, 20))  # warm up
    latencies, _, errors, elapsed = asyncio.run(
        drive(url, headers, query, _no_variables, concurrency, requests)
    )
    return len(latencies) / elapsed, median(latencies), percentile(latencies, 0.99), errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="herald serve --workers")
    args = parser.parse_args()
    database = prepare(Scale(20_000, 50, 2_000))
    headers = authorization(database)
    results: dict[str, dict[str, tuple[float, float, float, int]]] = {}
    with running_server(database, args.workers) as url:
        results["herald"] = {
            name: measure(url, headers, herald, args.concurrency, args.requests)
            for name, (herald, _) in QUERIES.items()
        }
    with postgraphile(database) as url:
        results["postgraphile"] = {
            name: measure(url, {}, peer, args.concurrency, args.requests)
            for name, (_, peer) in QUERIES.items()
        }
    rows = []
    for name in QUERIES:
        ours, theirs = results["herald"][name], results["postgraphile"][name]
        rows.append(
            (
                name,
                f"{ours[0]:.0f}",
                f"{theirs[0]:.0f}",
                f"{ours[0] / theirs[0]:.2f}x",
                f"{ours[1]:.1f} / {ours[2]:.1f}",
                f"{theirs[1]:.1f} / {theirs[2]:.1f}",
                ours[3] + theirs[3],
            )
        )
    print(
        table(
            (
                "query",
                "Herald req/s",
                "PostGraphile req/s",
                "ratio",
                "Herald p50/p99 ms",
                "PostGraphile p50/p99 ms",
                "errors",
            ),
            rows,
        )
    )
    print(
        f"\n{args.requests} requests per cell at concurrency {args.concurrency}; "
        f"herald serve --workers {args.workers}; PostGraphile 4 (one Node process)."
    )


if __name__ == "__main__":
    main()
