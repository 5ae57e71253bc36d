"""Herald's server time for the 1,000-message page against the SQL floor, in one run.

    python -m bench.floor [--samples 50]

The floor is one hand-written statement that builds the whole GraphQL answer as JSON
inside PostgreSQL (what a query compiler such as PostGraphile aims at), timed from a
client on loopback. Herald's figure is its own `Server-Timing` for the same document,
requests sent one at a time. The answers are checked equal before anything is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg
import httpx
import orjson

from bench.common import Scale, authorization, median, percentile, prepare, running_server, table

DOCUMENT = """{ campaigns(first: 10) { nodes { id: databaseId messages(first: 100) {
  nodes { id: databaseId status contact { id: databaseId phone name } } } } } }"""

FLOOR = """
SELECT json_build_object('data', json_build_object('campaigns', json_build_object('nodes',
  coalesce(json_agg(page.campaign ORDER BY page.id DESC), '[]'))))::text
FROM (
  SELECT c.id, json_build_object('id', c.id::text, 'messages', json_build_object('nodes', (
    SELECT coalesce(json_agg(json_build_object(
      'id', m.id::text, 'status', upper(m.status::text),
      'contact', json_build_object('id', k.id::text, 'phone', k.phone, 'name', k.name)
    ) ORDER BY m.id DESC), '[]')
    FROM (SELECT * FROM messages WHERE campaign_id = c.id ORDER BY id DESC LIMIT 100) m
    JOIN contacts k ON k.id = m.contact_id
  ))) AS campaign
  FROM (SELECT id FROM campaigns ORDER BY id DESC LIMIT 10) c
) page
"""


async def _floor(database: str, samples: int) -> tuple[list[float], object]:
    conn = await asyncpg.connect(database)
    try:
        answer = orjson.loads(await conn.fetchval(FLOOR))
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            await conn.fetchval(FLOOR)
            timings.append((time.perf_counter() - started) * 1000)
        return timings, answer
    finally:
        await conn.close()


def _herald(url: str, headers: dict[str, str], samples: int) -> tuple[list[float], object]:
    timings = []
    with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
        answer = http.post("/graphql", json={"query": DOCUMENT}).json()
        for _ in range(samples):
            response = http.post("/graphql", json={"query": DOCUMENT})
            server_timing = response.headers["server-timing"]
            timings.append(float(server_timing.split("dur=")[1]))
    answer.pop("extensions", None)
    return timings, answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    database = prepare(Scale(20_000, 50, 2_000))
    headers = authorization(database)
    rows = []
    with running_server(database, 1, HERALD_LOG_LEVEL="WARNING") as url:
        for _ in range(2):  # alternate, so a busy moment of the machine hits both
            floor, expected = asyncio.run(_floor(database, args.samples))
            herald, answer = _herald(url, headers, args.samples)
            if answer != expected:
                raise SystemExit("the floor statement and Herald answer differently")
            rows.append(
                (median(floor), percentile(floor, 0.95), median(herald), percentile(herald, 0.95))
            )
    print(
        table(
            ("round", "SQL floor p50 ms", "p95", "Herald server p50 ms", "p95", "Herald / floor"),
            [
                (i + 1, f"{f50:.1f}", f"{f95:.1f}", f"{h50:.1f}", f"{h95:.1f}", f"{h50 / f50:.1f}x")
                for i, (f50, f95, h50, h95) in enumerate(rows)
            ],
        )
    )
    print(f"\n{args.samples} sequential samples each; herald serve --workers 1; same database.")


if __name__ == "__main__":
    main()
