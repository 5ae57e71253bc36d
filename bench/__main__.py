"""`python -m bench`: a frontend-like query mix against `herald serve`, one table out.

Seeds a realistic data set once (default 20,000 contacts, 50 campaigns x 2,000
messages; --scale multiplies it), starts the server as operators do, drives each
query of the mix over HTTP at several concurrency levels with a bounded number of
requests, and writes the table as Markdown and JSON (plus a latency plot when
matplotlib is installed) under bench/results/. `--baseline` runs the same mix with
batching and caching turned off: the audit's N+1 state, for the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson

from bench.common import Scale, authorization, percentile, prepare, running_server, table

RESULTS = Path(__file__).with_name("results")

CAMPAIGN_DETAIL = """
query CampaignDetail($id: ID!) {
  campaign(id: $id) {
    id name status stats { total sent delivered read failed deliveryRate readRate }
    messages(first: 100) { nodes { id status contact { id phone name } } }
  }
}
"""

MIX: dict[str, str] = {
    "dashboard": """
query Dashboard {
  dashboard {
    contactCount categoryCount campaignCount campaignsByStatus { status count }
    messageStats { total sent delivered read failed deliveryRate readRate }
    recentCampaigns { id name status }
  }
}""",
    "campaigns list": """
query Campaigns {
  campaigns(first: 20) {
    totalCount nodes { id name status createdAt stats { total deliveryRate } }
  }
}""",
    "campaign detail (100 messages x contact)": CAMPAIGN_DETAIL,
    "contacts search page": """
query Contacts($search: String) {
  contacts(first: 20, search: $search) { totalCount nodes { id phone name whatsappStatus } }
}""",
    "categories with counts": """
query Categories { categories(first: 50) { nodes { id name contactCount } } }""",
    "createContact (mutation)": """
mutation CreateContact($phone: String!) {
  createContact(input: {phone: $phone, name: "Bench"}) { __typename }
}""",
    "startCampaign (mutation)": """
mutation StartCampaign($id: ID!) { startCampaign(id: $id) { __typename } }""",
}


@dataclass
class Row:
    query: str
    concurrency: int
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests_per_s: float
    sql_per_request: float
    errors: int


class Variables:
    """Per-request variables: mutations need fresh phones and fresh draft campaigns."""

    def __init__(self, campaign_ids: list[int], draft_ids: list[int]) -> None:
        self.campaign_ids = campaign_ids
        self.draft_ids = draft_ids
        self.counter = 0
        self.phone_base = random.randrange(100_000_000)

    def __call__(self, name: str) -> dict[str, Any]:
        self.counter += 1
        n = self.counter
        if name.startswith("campaign detail"):
            return {"id": str(self.campaign_ids[n % len(self.campaign_ids)])}
        if name.startswith("contacts search"):
            return {"search": f"{n % 90 + 10}"}
        if name.startswith("createContact"):  # a fresh valid French mobile number each time
            return {"phone": f"+336{(self.phone_base + n) % 100_000_000:08d}"}
        if name.startswith("startCampaign"):
            return {"id": str(self.draft_ids.pop())}
        return {}


async def drive(
    url: str,
    headers: dict[str, str],
    query: str,
    variables: Callable[[], dict[str, Any]],
    concurrency: int,
    requests: int,
) -> tuple[list[float], list[int], int, float]:
    """Send `requests` requests with `concurrency` in flight; latencies, SQL counts, errors.

    aiohttp, not httpx: on a 2-core machine the client shares the CPU with the server,
    and aiohttp spends ~0.5 ms of it per request where httpx spends ~1.2 ms.
    An error is a GraphQL error or a typed error result (`__typename` ending in Error).
    """
    latencies: list[float] = []
    statements: list[int] = []
    errors = 0
    remaining = requests

    async def worker(client: aiohttp.ClientSession) -> None:
        nonlocal remaining, errors
        while remaining > 0:
            remaining -= 1
            body = {"query": query, "variables": variables()}
            started = time.perf_counter()
            async with client.post("/graphql", json=body) as response:
                payload = await response.json(loads=orjson.loads)
                status = response.status
            latencies.append((time.perf_counter() - started) * 1000)
            if status != 200 or payload.get("errors") or _typed_error(payload.get("data")):
                errors += 1
            statements.append(payload.get("extensions", {}).get("sqlStatements", 0))

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        base_url=url, headers=headers, connector=connector, timeout=timeout
    ) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, statements, errors, elapsed


def _typed_error(data: object) -> bool:
    if isinstance(data, dict):
        return any(
            (key == "__typename" and str(value).endswith("Error")) or _typed_error(value)
            for key, value in data.items()
        )
    return isinstance(data, list) and any(_typed_error(item) for item in data)


async def fixtures(database: str, drafts: int) -> tuple[list[int], list[int], int]:
    """Campaign ids to read, fresh draft campaigns for startCampaign, and the message count."""
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(CLEAN_UP)
        messages = await conn.fetchval("SELECT count(*) FROM messages")
        readable = [
            r["campaign_id"]
            for r in await conn.fetch(
                "SELECT campaign_id FROM messages GROUP BY campaign_id HAVING count(*) >= 100"
            )
        ]
        target = await conn.fetchval("SELECT id FROM categories ORDER BY id LIMIT 1")
        draft_ids = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO campaigns (name, template_name, template_language, template_body)"
                " SELECT 'bench ' || g, 'bench', 'en', 'Hello {{1}}' FROM generate_series(1, $1) g"
                " RETURNING id",
                drafts,
            )
        ]
        await conn.executemany(
            "INSERT INTO campaign_categories (campaign_id, category_id) VALUES ($1, $2)",
            [(d, target) for d in draft_ids],
        )
        return readable, draft_ids, messages
    finally:
        await conn.close()


def _baseline_rates() -> dict[tuple[str, int], float]:
    """req/s of the last `--baseline` run, per (query, concurrency), when there is one."""
    path = RESULTS / "baseline.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())["rows"]
    return {(r["query"], r["concurrency"]): r["requests_per_s"] for r in rows}


def _ratio(row: Row, baseline: dict[tuple[str, int], float]) -> str:
    rate = baseline.get((row.query, row.concurrency))
    return f"{row.requests_per_s / rate:.1f}x" if rate else "-"


# The mix's own campaigns and contacts, removed before each run so that "the newest
# campaigns" stay the seeded ones, with their messages, for every other benchmark.
CLEAN_UP = """
DELETE FROM campaigns WHERE name LIKE 'bench %';
DELETE FROM contacts WHERE name = 'Bench';
"""


async def clean_up(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(CLEAN_UP)
    finally:
        await conn.close()


def plot(rows: list[Row], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(8, 5))
    for name in dict.fromkeys(r.query for r in rows):
        points = [(r.concurrency, r.p99_ms) for r in rows if r.query == name]
        axis.plot(*zip(*points, strict=True), marker="o", label=name)
    axis.set_xlabel("concurrent requests")
    axis.set_ylabel("p99 latency (ms)")
    axis.set_xscale("log", base=2)
    levels = sorted({r.concurrency for r in rows})
    axis.set_xticks(levels, [str(level) for level in levels])
    axis.set_title("Herald: p99 latency vs concurrency")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the data set")
    parser.add_argument("--requests", type=int, default=200, help="per query and concurrency")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--workers", type=int, default=2, help="herald serve --workers")
    parser.add_argument("--baseline", action="store_true", help="no batching, no caching")
    parser.add_argument(
        "--auth-header",
        default=os.environ.get("HERALD_BENCH_AUTHORIZATION", ""),
        help="Authorization header to send (default: a fresh admin key of the bench database)",
    )
    args = parser.parse_args()
    scale = Scale(round(20_000 * args.scale), round(50 * args.scale), 2_000)
    levels = [int(c) for c in args.concurrency.split(",")]
    database = prepare(scale)
    readable, drafts, messages = asyncio.run(fixtures(database, (args.requests + 10) * len(levels)))
    variables = Variables(readable, drafts)
    headers = {"Authorization": args.auth_header} if args.auth_header else authorization(database)
    rows: list[Row] = []
    naive = "true" if args.baseline else "false"
    with running_server(database, args.workers, HERALD_NAIVE_RESOLVERS=naive) as url:
        for name, query in MIX.items():
            next_variables = functools.partial(variables, name)
            for level in levels:
                asyncio.run(drive(url, headers, query, next_variables, level, 10))  # warm up
                latencies, statements, errors, elapsed = asyncio.run(
                    drive(url, headers, query, next_variables, level, args.requests)
                )
                rows.append(
                    Row(
                        query=name,
                        concurrency=level,
                        requests=len(latencies),
                        p50_ms=round(percentile(latencies, 0.50), 1),
                        p95_ms=round(percentile(latencies, 0.95), 1),
                        p99_ms=round(percentile(latencies, 0.99), 1),
                        requests_per_s=round(len(latencies) / elapsed, 1),
                        sql_per_request=round(sum(statements) / len(statements), 1),
                        errors=errors,
                    )
                )
                print(rows[-1], file=sys.stderr)
    asyncio.run(clean_up(database))
    RESULTS.mkdir(exist_ok=True)
    stem = "baseline" if args.baseline else "herald"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    baseline = _baseline_rates() if not args.baseline else {}
    markdown = table(
        (
            "query",
            "concurrency",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "req/s",
            "SQL/request",
            "errors",
            "req/s vs baseline",
        ),
        [
            (
                r.query,
                r.concurrency,
                r.p50_ms,
                r.p95_ms,
                r.p99_ms,
                r.requests_per_s,
                r.sql_per_request,
                r.errors,
                _ratio(r, baseline),
            )
            for r in rows
        ],
    )
    header = (
        f"{stem}: {scale.contacts:,} contacts, {scale.campaigns} campaigns, {messages:,} messages "
        f"(up to {scale.messages_per_campaign:,} per started campaign); "
        f"herald serve --workers {args.workers}; "
        f"{args.requests} requests per cell; client and server on one machine ({machine})."
    )
    (RESULTS / f"{stem}.md").write_text(header + "\n\n" + markdown + "\n")
    (RESULTS / f"{stem}.json").write_text(
        json.dumps({"setup": header, "rows": [asdict(r) for r in rows]}, indent=2)
    )
    if plot(rows, RESULTS / f"{stem}.png"):
        print(f"plot: {RESULTS / (stem + '.png')}", file=sys.stderr)
    print(header + "\n\n" + markdown)


if __name__ == "__main__":
    main()
