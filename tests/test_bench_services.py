"""The benchmarks' servers: a PostgreSQL cluster and a redis-server of the run's own, never
the machine's, and nothing of them left once the run exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# What a benchmark does first: its database and its Redis, each written to once.
RUN = """
import asyncio, json
import asyncpg, redis
from bench.common import admin_url, redis_url

async def postgres():
    connection = await asyncpg.connect(admin_url())
    await connection.execute("CREATE DATABASE herald_bench_probe")
    folder = await connection.fetchval("SHOW data_directory")
    await connection.close()
    return folder

client = redis.Redis.from_url(redis_url())
client.set("probe", "1")
print(json.dumps({
    "postgres": asyncio.run(postgres()),
    "redis": client.config_get("dir")["dir"],
    "urls": [admin_url(), redis_url()],
}))
"""


def test_a_benchmark_run_writes_to_servers_of_its_own_and_removes_them() -> None:
    # given a run told of no servers (no HERALD_BENCH_* variables)
    environment = {n: v for n, v in os.environ.items() if not n.startswith("HERALD_BENCH_")}

    # when it creates a database and writes a key, then exits
    done = subprocess.run(
        [sys.executable, "-c", RUN],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seen = json.loads(done.stdout.splitlines()[-1])

    # then both were servers it started in folders of its own, and the folders are gone
    for folder in (seen["postgres"], seen["redis"]):
        assert Path(folder).name.startswith("herald-") or Path(folder).parent.name.startswith(
            "herald-"
        ), seen
        assert not Path(folder).exists(), seen
    assert not any(":5432/" in url or ":6379/" in url for url in seen["urls"]), seen
