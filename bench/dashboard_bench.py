"""The dashboard served from the field cache vs computed from PostgreSQL on every request.

    python -m bench.dashboard_bench [--runs 200]

Runs the real server on the seeded bench database and reads the server's own time
from the Server-Timing header. "Uncached" bumps the cache generations the dashboard
depends on before each request, so every request misses and recomputes (including
the cost of writing the fresh value back), exactly as after a mutation.
"""

from __future__ import annotations

import argparse
import asyncio

import httpx

from app.cache import bump_generations, open_redis
from bench.common import (
    Scale,
    authorization,
    median,
    percentile,
    prepare,
    redis_url,
    running_server,
    table,
)

DASHBOARD = """
query Dashboard {
  dashboard {
    contactCount optedOutContactCount categoryCount campaignCount
    campaignsByStatus { status count }
    messageStats { total pending sent delivered read failed deliveryRate readRate }
    recentCampaigns { id name status }
  }
}
"""


def _invalidate() -> None:
    async def bump() -> None:
        redis = open_redis(redis_url(), timeout=1.0)
        try:
            await bump_generations(redis, "stats", "campaigns", "categories")
        finally:
            await redis.aclose()

    asyncio.run(bump())


def measure(url: str, headers: dict[str, str], runs: int, cached: bool) -> tuple[list[float], int]:
    """Server times (ms) and the SQL statements of the last request."""
    times: list[float] = []
    with httpx.Client(base_url=url, headers=headers) as http:
        for i in range(runs + 5):
            if not cached:
                _invalidate()
            response = http.post("/graphql", json={"query": DASHBOARD})
            body = response.json()
            assert "errors" not in body, body["errors"]
            if i >= 5:  # the first ones warm pools and caches
                times.append(float(response.headers["server-timing"].split("dur=")[1]))
    return times, body["extensions"]["sqlStatements"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    database = prepare(Scale(20_000, 50, 2_000))
    headers = authorization(database)
    rows = []
    with running_server(database) as url:
        for name, cached in (("cached (Redis)", True), ("uncached (PostgreSQL)", False)):
            times, statements = measure(url, headers, args.runs, cached)
            rows.append(
                (name, statements, f"{median(times):.2f}", f"{percentile(times, 0.95):.2f}")
            )
    print(table(("dashboard", "SQL statements", "server p50 ms", "server p95 ms"), rows))
    print(f"\n{args.runs} sequential requests each; 20,000 contacts, ~100,000 messages.")


if __name__ == "__main__":
    main()
