"""The N+1 benchmark: 10 campaigns x 100 messages x contact, round trips and server time.

    python -m bench.api_bench [--runs 50] [--contacts 20000 --campaigns 50 --messages 2000]

Seeds (once) a database of its own, runs the real server as operators do, sends the
query sequentially and reads the server's own timing from the Server-Timing header.
"""

from __future__ import annotations

import argparse
import time

import httpx

from bench.common import (
    Scale,
    authorization,
    median,
    percentile,
    prepare,
    running_server,
    table,
)

QUERY = """
{
  campaigns(first: 10) {
    nodes { messages(first: 100) { nodes { id status contact { id phone name } } } }
  }
}
"""

SMALL_PAGE = """
{
  campaigns(first: 5) {
    nodes { id name messages(first: 10) { nodes { id status contact { id phone name } } } }
  }
}
"""


def measure(
    url: str, headers: dict[str, str], query: str, runs: int
) -> tuple[int, list[float], list[float], int]:
    """SQL round trips, server times (ms), HTTP times (ms), leaves in the answer."""
    server: list[float] = []
    client: list[float] = []
    with httpx.Client(base_url=url, headers=headers) as http:
        for _ in range(5):  # warm the pools and the document caches
            http.post("/graphql", json={"query": query})
        for _ in range(runs):
            started = time.perf_counter()
            response = http.post("/graphql", json={"query": query})
            client.append((time.perf_counter() - started) * 1000)
            body = response.json()
            assert "errors" not in body, body["errors"]
            timing = response.headers["server-timing"]
            server.append(float(timing.split("dur=")[1]))
    nodes = body["data"]["campaigns"]["nodes"]
    leaves = sum(len(c["messages"]["nodes"]) for c in nodes)
    return body["extensions"]["sqlStatements"], server, client, leaves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--naive", action="store_true", help="batching and caching off")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--campaigns", type=int, default=50)
    parser.add_argument("--messages", type=int, default=2_000)
    args = parser.parse_args()
    database = prepare(Scale(args.contacts, args.campaigns, args.messages))
    headers = authorization(database)
    rows = []
    naive = "true" if args.naive else "false"
    with running_server(database, HERALD_NAIVE_RESOLVERS=naive) as url:
        for name, query in (
            ("10 campaigns x 100 messages x contact", QUERY),
            ("5 x 10 (small page)", SMALL_PAGE),
        ):
            statements, server, client, leaves = measure(url, headers, query, args.runs)
            rows.append(
                (
                    name,
                    leaves,
                    statements,
                    f"{median(server):.1f}",
                    f"{percentile(server, 0.95):.1f}",
                    f"{median(client):.1f}",
                )
            )
    print(
        table(
            (
                "query",
                "leaf objects",
                "SQL round trips",
                "server p50 ms",
                "server p95 ms",
                "HTTP p50 ms",
            ),
            rows,
        )
    )
    print(
        f"\n{args.runs} sequential runs each; {args.contacts:,} contacts, "
        f"{args.campaigns} campaigns x {args.messages:,} messages."
    )


if __name__ == "__main__":
    main()
