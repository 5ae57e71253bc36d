"""`python -m bench.live_bench`: commit → event latency of `campaignProgress` subscriptions.

Starts `herald serve` (one process), opens N graphql-transport-ws subscribers on one
campaign, and plays the worker's part in a process of its own: every `--interval-ms` it
commits a batch of messages as sent and calls the workers' own notifier
(app/campaigns/progress.py), then completes the campaign. Each subscriber timestamps its
events; a commit's latency is the time until a subscriber's first event that includes it.
Reported per subscriber count, in the same run: p50/p99 latency, events per subscriber,
the API process's CPU, and whether every subscriber's final event equals the database's
counts. `--rounds N` plays every level N times on the same server and reports each
figure's spread (lowest to highest); `--py-spy DIR` samples the API process with py-spy
during each level's commits; `--timings DIR` keeps the raw commit and event times.

The subscribers are one light asyncio client (aiohttp on uvloop) sharing the machine's
cores with the server, PostgreSQL and Redis: its receive time includes its own queueing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import psutil
import uvloop

from app.cache import open_redis
from app.campaigns.progress import notify_campaign_progress
from bench.common import (
    authorization,
    fresh_database,
    percentile,
    redis_url,
    running_server,
)

DATABASE = "herald_live_bench"
SUBSCRIPTION = """
subscription Live($id: ID!) {
  campaignProgress(id: $id) {
    status stats { total pending sending sent delivered read failed } messagesPerSecond
  }
}
"""


@dataclass
class Subscriber:
    events: list[tuple[float, int, str]] = field(default_factory=list)  # (time, sent, status)
    final: dict[str, Any] | None = None


async def _database() -> str:
    url = await fresh_database(DATABASE)
    return url


async def _campaign(db: asyncpg.Connection, messages: int) -> int:
    """A campaign in `sending` with `messages` pending messages (contacts made as needed)."""
    await db.execute(
        """
        INSERT INTO contacts (phone, name)
        SELECT '+3362' || lpad(i::text, 7, '0'), 'Contact ' || i FROM generate_series(0, $1 - 1) i
        ON CONFLICT DO NOTHING
        """,
        messages,
    )
    campaign_id: int = await db.fetchval(
        """
        INSERT INTO campaigns (name, template_name, template_language, template_body, status,
                               started_at)
        VALUES ('Live bench', 'bench', 'fr', 'Bonjour', 'sending', now()) RETURNING id
        """
    )
    await db.execute(
        """
        INSERT INTO messages (campaign_id, contact_id)
        SELECT $1, id FROM contacts ORDER BY id LIMIT $2
        """,
        campaign_id,
        messages,
    )
    return campaign_id


async def _subscribe(
    session: aiohttp.ClientSession,
    url: str,
    key: str,
    campaign_id: int,
    into: Subscriber,
    ready: asyncio.Event,
    connected: list[int],
    total: int,
) -> None:
    async with session.ws_connect(url, protocols=("graphql-transport-ws",), heartbeat=None) as ws:
        await ws.send_str(
            orjson.dumps(
                {"type": "connection_init", "payload": {"Authorization": f"Bearer {key}"}}
            ).decode()
        )
        reply = await ws.receive()
        assert reply.type == aiohttp.WSMsgType.TEXT, (reply.type, reply.data, reply.extra)
        ack = orjson.loads(reply.data)
        assert ack["type"] == "connection_ack", ack
        payload = {"query": SUBSCRIPTION, "variables": {"id": str(campaign_id)}}
        await ws.send_str(
            orjson.dumps({"id": "1", "type": "subscribe", "payload": payload}).decode()
        )
        first = True
        async for frame in ws:
            now = time.monotonic()
            message = orjson.loads(frame.data)
            if message["type"] == "ping":
                await ws.send_str('{"type":"pong"}')
                continue
            if message["type"] != "next":
                if first:
                    raise RuntimeError(f"subscription refused: {message}")
                break  # complete (or an error, which the final check reports)
            progress = message["payload"]["data"]["campaignProgress"]
            into.events.append((now, progress["stats"]["sent"], progress["status"]))
            into.final = progress
            if first:
                first = False
                connected[0] += 1
                if connected[0] == total:
                    ready.set()


async def _level(
    server: str,
    key: str,
    database: str,
    subscribers: int,
    batches: int,
    batch: int,
    interval: float,
    profile: Path | None,
    worker: Executor,
) -> dict[str, Any]:
    db = await asyncpg.connect(database)
    campaign_id = await _campaign(db, batches * batch)
    url = server.replace("http://", "ws://") + "/graphql"
    subs = [Subscriber() for _ in range(subscribers)]
    ready = asyncio.Event()
    connected = [0]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = []
        for sub in subs:
            tasks.append(
                asyncio.create_task(
                    _subscribe(session, url, key, campaign_id, sub, ready, connected, subscribers)
                )
            )
            if len(tasks) % 50 == 0:
                await asyncio.sleep(0.05)  # connect in waves, as browsers arrive
        connecting = asyncio.ensure_future(ready.wait())
        done, _ = await asyncio.wait(
            [connecting, *tasks], timeout=120, return_when=asyncio.FIRST_COMPLETED
        )
        for task in done - {connecting}:
            task.result()  # a subscriber refused: say why
        if not ready.is_set():
            raise RuntimeError(f"{connected[0]} of {subscribers} subscribed within 120 s")
        await asyncio.sleep(1.0)

        api = psutil.Process(_server_pid(server))
        me = psutil.Process()
        spy = _py_spy(api.pid, profile) if profile is not None else None
        cpu_before = sum(api.cpu_times()[:2])
        client_before = sum(me.cpu_times()[:2])
        gc.disable()  # the client's own collections would count as the server's latency
        started = time.monotonic()
        commits = await asyncio.get_running_loop().run_in_executor(
            worker, _play_worker, database, campaign_id, batches, batch, interval
        )
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        elapsed = time.monotonic() - started
        cpu = sum(api.cpu_times()[:2]) - cpu_before
        client_cpu = sum(me.cpu_times()[:2]) - client_before
        gc.enable()
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            spy.wait(timeout=60)
    counts = dict(
        await db.fetch(
            "SELECT status::text, count(*) FROM messages WHERE campaign_id = $1 GROUP BY 1",
            campaign_id,
        )
    )
    await db.close()

    latencies = _latencies(commits, subs)
    expected = {"status": "COMPLETED", "sent": counts.get("sent", 0)}
    exact = sum(
        1
        for s in subs
        if s.final is not None
        and {"status": s.final["status"], "sent": s.final["stats"]["sent"]} == expected
    )
    return {
        "subscribers": subscribers,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "events": sum(len(s.events) for s in subs) / subscribers,
        "cpu_pct": 100 * cpu / elapsed,
        "cpu_us_per_delivery": 1e6 * cpu / max(1, sum(len(s.events) for s in subs)),
        "client_cpu_pct": 100 * client_cpu / elapsed,
        "exact_final": exact,
        "elapsed_s": elapsed,
        "timings": {"commits": commits, "events": [s.events for s in subs]},
    }


def _play_worker(
    database: str, campaign_id: int, batches: int, batch: int, interval: float
) -> list[tuple[float, int]]:
    """The worker's part, in a process of its own as workers are (the subscribers' busy loop
    must not delay a notification): every `interval` commit a batch as sent and notify as
    workers do; then complete the campaign. Returns (commit time, messages sent by then)."""
    return uvloop.run(_commit_batches(database, campaign_id, batches, batch, interval))


async def _commit_batches(
    database: str, campaign_id: int, batches: int, batch: int, interval: float
) -> list[tuple[float, int]]:
    db = await asyncpg.connect(database)
    redis = open_redis(redis_url(), timeout=1.0)
    commits: list[tuple[float, int]] = []
    try:
        started = time.monotonic()
        for n in range(1, batches + 1):
            await db.execute(
                """
                UPDATE messages SET status = 'sent', sent_at = now() WHERE id IN (
                    SELECT id FROM messages WHERE campaign_id = $1 AND status = 'pending'
                    ORDER BY id LIMIT $2)
                """,
                campaign_id,
                batch,
            )
            commits.append((time.monotonic(), n * batch))
            await notify_campaign_progress(redis, campaign_id)
            await asyncio.sleep(max(0.0, started + n * interval - time.monotonic()))
        await db.execute(
            "UPDATE campaigns SET status = 'completed', completed_at = now() WHERE id = $1",
            campaign_id,
        )
        await notify_campaign_progress(redis, campaign_id, force=True)
    finally:
        await db.close()
        await redis.aclose()
    return commits


def _latencies(commits: Sequence[tuple[float, int]], subs: Sequence[Subscriber]) -> list[float]:
    """Per commit and subscriber: the wait until the first event counting that commit."""
    out = []
    for sub in subs:
        events = sub.events
        i = 0
        for committed_at, sent in commits:
            while i < len(events) and events[i][1] < sent:
                i += 1
            if i == len(events):
                break
            out.append(events[i][0] - committed_at)
    return out


def _py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` into `out` (collapsed stacks, with idle frames) until SIGINT."""
    command = [
        os.environ.get("PY_SPY", "py-spy"),
        *("record", "--pid", str(pid), "--format", "raw", "--rate", "250", "--idle"),
        *("--nonblocking", "--output", str(out)),
    ]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)  # attached before the first commit
    return spy


def _server_pid(url: str) -> int:
    """The `herald serve` process listening on the URL's port."""
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        listening = conn.status == psutil.CONN_LISTEN and conn.pid is not None
        if listening and conn.laddr and conn.laddr.port == port:
            return int(conn.pid)
    raise RuntimeError(f"no process listens on port {port}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", default="1,100,1000", help="comma-separated levels")
    parser.add_argument("--batches", type=int, default=100, help="commits per campaign")
    parser.add_argument("--batch", type=int, default=50, help="messages per commit")
    parser.add_argument("--interval-ms", type=int, default=100, help="time between commits")
    parser.add_argument("--rounds", type=int, default=1, help="times each level is played")
    parser.add_argument("--py-spy", type=Path, help="record the API process into this folder")
    parser.add_argument(
        "--timings", type=Path, help="write each level's commit and event times into this folder"
    )
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.subscribers.split(",")]
    for folder in (args.py_spy, args.timings):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    database = asyncio.run(_database())
    key = authorization(database)["Authorization"].removeprefix("Bearer ")
    rows: dict[int, list[dict[str, Any]]] = {level: [] for level in levels}
    cap = str(max(levels) + 10)  # one key for every subscriber
    # No late statuses come here: the final event is the last (no settle wait in the CPU).
    with (
        running_server(
            database, HERALD_LIVE_MAX_SUBSCRIPTIONS_PER_KEY=cap, HERALD_PROGRESS_SETTLE_S="0"
        ) as server,
        ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as worker,
    ):
        worker.submit(int).result()  # started before anything is measured
        for round_ in range(1, args.rounds + 1):
            for level in levels:
                profile = None
                if args.py_spy is not None:
                    profile = args.py_spy / f"api-{level}-round{round_}.txt"
                # The subscribers on uvloop, as the server: a client's own slowness would
                # count as the server's latency.
                row = uvloop.run(
                    _level(
                        server,
                        key,
                        database,
                        level,
                        args.batches,
                        args.batch,
                        args.interval_ms / 1000,
                        profile,
                        worker,
                    )
                )
                timings = row.pop("timings")
                if args.timings is not None:
                    path = args.timings / f"timings-{level}-round{round_}.json"
                    path.write_bytes(orjson.dumps(timings))
                rows[level].append(row)
                print(
                    f"round {round_}, {level} subscribers: p50 {row['p50_ms']:.0f} ms, "
                    f"p99 {row['p99_ms']:.0f} ms, API CPU {row['cpu_pct']:.0f}%, "
                    f"load {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                )
    print(
        f"\n{args.batches} commits of {args.batch} messages every {args.interval_ms} ms; "
        f"one API process; {os.cpu_count()} cores shared with the client, PostgreSQL, Redis; "
        f"{args.rounds} round(s), spread lowest to highest; load average {os.getloadavg()[0]:.1f}\n"
    )
    print(
        "| subscribers | p50 commit→event | p99 | events/subscriber "
        "| API CPU (% of a core) | API CPU per event delivered | client CPU | final event = DB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for level, played in rows.items():
        exact = sum(row["exact_final"] for row in played)
        print(
            f"| {level:,} | {_spread(played, 'p50_ms', ' ms')} "
            f"| {_spread(played, 'p99_ms', ' ms')} "
            f"| {_spread(played, 'events', '', 1)} | {_spread(played, 'cpu_pct', '%')} "
            f"| {_spread(played, 'cpu_us_per_delivery', ' µs')} "
            f"| {_spread(played, 'client_cpu_pct', '%')} "
            f"| {exact:,}/{level * len(played):,} |"
        )
    return 0


def _spread(rows: Sequence[dict[str, Any]], name: str, unit: str, digits: int = 0) -> str:
    values = sorted(row[name] for row in rows)
    low, high = f"{values[0]:.{digits}f}", f"{values[-1]:.{digits}f}"
    return f"{low}{unit}" if low == high else f"{low} to {high}{unit}"


if __name__ == "__main__":
    raise SystemExit(main())
