"""`python -m bench.scale_bench`: statistics at 100 k and 10 M messages, uncached.

    python -m bench.scale_bench [--scale small|large|both] [--runs 200] [--dispatch-rounds 2]
                                [--reseed]

Seeds each scale set-based (`app.seed`: INSERT ... SELECT over generate_series, the large
tables loaded with their indexes, constraints and triggers set aside and rebuilt after;
the seed time is reported) in a database of its own, reused by later runs (migrated to
the current schema first) unless `--reseed`. Runs the real server and, with
every cache generation bumped before each request (so each one misses and recomputes),
reads the server's own time (Server-Timing) of: the dashboard, messageStats, the stats
of the largest finished campaign (1 M messages at the large scale, 1 k at the small one)
and the 10 campaigns x 100 messages x contact page. The servers of all scales run at
once and requests alternate between them, so both see the same machine load. For
contrast it times, in the same databases, the count(*) statements the counters replaced.

`--dispatch-rounds N` also runs `bench.dispatch_bench` N times with the counting
triggers switched off and on, interleaved, so before and after share the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass

import asyncpg
import httpx
import orjson

from app.cache import NAMESPACES, bump_generations, open_redis
from app.config import load_settings
from app.db import migrate
from app.db.engine import create_engine
from app.seed import seed
from bench import dispatch_bench
from bench.common import (
    Scale,
    admin_url,
    authorization,
    database_url,
    median,
    percentile,
    redis_url,
    running_server,
    table,
)

SCALES = {
    # 108 of 110 campaigns start (drafts and scheduled ones have no messages): ~100 k.
    "small": Scale(contacts=10_000, campaigns=110, messages_per_campaign=1_000),
    # 10 of 12 start: 10 M messages to 1 M contacts, campaigns of 1 M each.
    "large": Scale(contacts=1_000_000, campaigns=12, messages_per_campaign=1_000_000),
}

DASHBOARD = """
{
  dashboard {
    contactCount optedOutContactCount categoryCount campaignCount
    campaignsByStatus { status count }
    messageStats { total pending sent delivered read failed interactionCount deliveryRate readRate }
    recentCampaigns { id name status }
  }
}
"""
MESSAGE_STATS = """
{ messageStats { total pending sending sent delivered read failed interactionCount readRate } }
"""
CAMPAIGN_STATS = """
query($id: ID!) {
  campaign(id: $id) {
    stats { total pending sending sent delivered read failed interactionCount deliveryRate }
  }
}
"""
PAGE = """
{
  campaigns(first: 10) {
    nodes { messages(first: 100) { nodes { id status contact { id phone name } } } }
  }
}
"""
# What messageStats and a campaign's stats ran before the counters.
OLD_GLOBAL = "SELECT status, count(*) FROM messages GROUP BY status"
OLD_CAMPAIGN = (
    "SELECT status, count(*) FROM messages WHERE campaign_id = $1 GROUP BY status"
    " UNION ALL SELECT 'interactions', count(*) FROM messages m"
    " JOIN interactions i ON i.message_id = m.id WHERE m.campaign_id = $1"
)


@dataclass(frozen=True)
class Seeded:
    url: str
    messages: int
    seconds: float | None  # how long the seed took (kept as the database's comment)


async def _seed(scale: Scale, reseed: bool = False) -> Seeded:
    admin = await asyncpg.connect(admin_url())
    try:
        if reseed:
            await admin.execute(f'DROP DATABASE IF EXISTS "{scale.database}" WITH (FORCE)')
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", scale.database
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{scale.database}"')
    finally:
        await admin.close()
    url = database_url(scale)
    settings = load_settings(database_url=url, redis_url=redis_url())
    # A database seeded by older code is brought to the current schema (counters included).
    await asyncio.to_thread(migrate.upgrade, settings.async_database_url)
    if not exists:
        engine = create_engine(settings)
        try:
            report = await seed(
                engine, scale.contacts, scale.campaigns, scale.messages_per_campaign
            )
        finally:
            await engine.dispose()
        print(f"seeded {report.summary()}", file=sys.stderr)
    conn = await asyncpg.connect(url)
    try:
        if not exists:  # remembered for the runs that reuse the database
            await conn.execute(
                f"COMMENT ON DATABASE \"{scale.database}\" IS 'seeded in {report.seconds:.1f} s'"
            )
        comment = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            scale.database,
        )
        messages = await conn.fetchval("SELECT count(*) FROM messages")
    finally:
        await conn.close()
    seconds = float(comment.split()[2]) if comment and comment.startswith("seeded in") else None
    return Seeded(url, int(messages), seconds)


async def _largest_finished(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT c.id, count(m.id) AS n FROM campaigns c JOIN messages m"
            " ON m.campaign_id = c.id WHERE c.status = 'completed'"
            " GROUP BY c.id ORDER BY n DESC, c.id LIMIT 1"
        )
    finally:
        await conn.close()
    return int(row["id"]), int(row["n"])


async def _old_statements(url: str, campaign_id: int, runs: int = 3) -> tuple[float, float]:
    """Median ms of the count(*) statements the counters replaced (in psql terms)."""
    conn = await asyncpg.connect(url)
    try:
        timings: dict[str, list[float]] = {"global": [], "campaign": []}
        for _ in range(runs):
            began = time.perf_counter()
            await conn.fetch(OLD_GLOBAL)
            timings["global"].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            await conn.fetch(OLD_CAMPAIGN, campaign_id)
            timings["campaign"].append((time.perf_counter() - began) * 1000)
    finally:
        await conn.close()
    return median(timings["global"]), median(timings["campaign"])


def _invalidate_all() -> None:
    async def bump() -> None:
        redis = open_redis(redis_url(), timeout=1.0)
        try:
            await bump_generations(redis, *NAMESPACES)
        finally:
            await redis.aclose()

    asyncio.run(bump())


@dataclass(frozen=True)
class Target:
    """One seeded scale, measured side by side with the others."""

    name: str
    seeded: Seeded
    campaign_id: int
    campaign_messages: int
    old_global: float
    old_campaign: float
    headers: dict[str, str]

    @property
    def label(self) -> str:
        seed = "unknown" if self.seeded.seconds is None else f"{self.seeded.seconds:,.0f} s"
        return f"{self.seeded.messages:,} messages (seed {seed})"

    def queries(self) -> list[tuple[str, str, dict[str, object], float | None]]:
        return [
            ("dashboard", DASHBOARD, {}, self.old_global),
            ("messageStats", MESSAGE_STATS, {}, self.old_global),
            (
                f"campaign stats ({self.campaign_messages:,} messages)",
                CAMPAIGN_STATS,
                {"id": str(self.campaign_id)},
                self.old_campaign,
            ),
            ("10 x 100 messages x contact", PAGE, {}, None),
        ]


def _target(name: str, reseed: bool) -> Target:
    seeded = asyncio.run(_seed(SCALES[name], reseed))
    campaign_id, campaign_messages = asyncio.run(_largest_finished(seeded.url))
    old_global, old_campaign = asyncio.run(_old_statements(seeded.url, campaign_id))
    return Target(
        name,
        seeded,
        campaign_id,
        campaign_messages,
        old_global,
        old_campaign,
        authorization(seeded.url),
    )


def _sample(http: httpx.Client, query: str, variables: dict[str, object]) -> tuple[float, int]:
    """One uncached request: the server's own time (ms) and its SQL statements."""
    _invalidate_all()
    response = http.post("/graphql", json={"query": query, "variables": variables})
    body = orjson.loads(response.content)
    assert "errors" not in body, body["errors"]
    server = float(response.headers["server-timing"].split("dur=")[1])
    return server, int(body["extensions"]["sqlStatements"])


def run_scales(names: list[str], runs: int, reseed: bool = False) -> list[tuple[object, ...]]:
    """Every scale's server runs at once and requests alternate between them, so a change
    in the machine's load hits all scales alike and their ratio stays meaningful."""
    targets = [_target(name, reseed) for name in names]
    rows: list[tuple[object, ...]] = []
    with ExitStack() as stack:
        clients = [
            stack.enter_context(
                httpx.Client(
                    base_url=stack.enter_context(
                        running_server(t.seeded.url, HERALD_LOG_LEVEL="warning")
                    ),
                    headers=t.headers,
                    timeout=60,
                )
            )
            for t in targets
        ]
        for index in range(len(targets[0].queries())):
            times: list[list[float]] = [[] for _ in targets]
            statements = [0] * len(targets)
            for i in range(runs + 5):
                for n, (target, http) in enumerate(zip(targets, clients, strict=True)):
                    _, query, variables, _ = target.queries()[index]
                    server, statements[n] = _sample(http, query, variables)
                    if i >= 5:  # the first ones warm pools and plans
                        times[n].append(server)
            for n, target in enumerate(targets):
                field, _, _, old = target.queries()[index]
                rows.append(
                    (
                        target.label,
                        field,
                        statements[n],
                        f"{median(times[n]):.2f}",
                        f"{percentile(times[n], 0.99):.2f}",
                        f"{median(times[n]) / median(times[0]):.2f}",
                        "-" if old is None else f"{old:,.0f}",
                    )
                )
                print(f"{target.name}: {field} p50 {median(times[n]):.2f} ms", file=sys.stderr)
    return rows


def run_dispatch(rounds: int) -> list[tuple[object, ...]]:
    """dispatch_bench without and with the counting triggers, interleaved, default config."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for counters in (False, True):
            result = asyncio.run(dispatch_bench.run_once(10_000, 2, 2, 200, 4, 32, counters))
            rates[counters].append(result.rate)
            print(f"dispatch counters={counters}: {result.rate:,.0f} msg/s", file=sys.stderr)
    before, after = statistics.median(rates[False]), statistics.median(rates[True])
    return [
        ("without counters (before)", rounds, f"{before:,.0f}", "1.00"),
        ("with counters (after)", rounds, f"{after:,.0f}", f"{after / before:.2f}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", choices=("small", "large", "both"), default="both")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--dispatch-rounds", type=int, default=0)
    parser.add_argument(
        "--reseed", action="store_true", help="drop and seed the scales' databases again"
    )
    args = parser.parse_args()
    names = ["small", "large"] if args.scale == "both" else [args.scale]
    rows = run_scales(names, args.runs, args.reseed)
    print(
        table(
            (
                "data",
                "uncached query",
                "SQL statements",
                "server p50 ms",
                "server p99 ms",
                f"p50 vs {names[0]}",
                "count(*) it replaced, ms",
            ),
            rows,
        )
    )
    print(
        f"\n{args.runs} uncached requests per cell (every cache generation bumped before"
        " each), alternating between the scales' servers."
    )
    if args.dispatch_rounds:
        print()
        print(
            table(
                ("dispatch_bench, 10,000 contacts", "runs", "median msg/s", "ratio"),
                run_dispatch(args.dispatch_rounds),
            )
        )


if __name__ == "__main__":
    main()
