"""`python -m bench.dispatch_bench`: messages/s dispatched by real worker processes.

Seeds a campaign (default 10,000 targeted contacts) in a database of its own, starts
`dramatiq app.worker.process` with N processes against a zero-latency fake Cloud API
(a bare asyncio HTTP server in its own process, so the fake costs as little CPU as
possible), starts the campaign the way startCampaign does, and times it to completion.
Prints one table row per configuration; also checks that no contact got two sends.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import asyncpg
import httpx
import orjson

from app.config import load_settings
from app.worker.jobs import open_jobs
from bench.common import clean_dispatch_redis, free_port, fresh_database, redis_url

DATABASE = os.environ.get("HERALD_DISPATCH_BENCH_DATABASE", "herald_dispatch_bench")
PHONE_NUMBER_ID = "100200300"
ROOT = Path(__file__).resolve().parent.parent
DRAMATIQ = [sys.executable, "-m", "dramatiq", "app.worker.process"]


# --- the fake provider -------------------------------------------------------------


class _FakeCloudApi(asyncio.Protocol):
    """Just enough HTTP/1.1 keep-alive to answer the Cloud API's send call at once."""

    seen: set[str] = set()
    duplicates = 0
    sends = 0
    first = 0.0
    last = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < head_end + 4 + length:
                return
            body = self.buffer[head_end + 4 : head_end + 4 + length]
            self.buffer = self.buffer[head_end + 4 + length :]
            self.transport.write(self._answer(head.split(" ", 2)[1], body))

    def _answer(self, path: str, body: bytes) -> bytes:
        cls = _FakeCloudApi
        if path == "/stats":
            payload = orjson.dumps(
                {
                    "sends": cls.sends,
                    "duplicates": cls.duplicates,
                    "seconds": cls.last - cls.first,
                }
            )
        else:
            to = orjson.loads(body)["to"]
            if to in cls.seen:
                cls.duplicates += 1
            cls.seen.add(to)
            cls.sends += 1
            cls.last = time.perf_counter()
            cls.first = cls.first or cls.last
            payload = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.b%d"}]}' % (
                cls.sends
            )
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
        )


def _serve_fake(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FakeCloudApi, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# --- the run -----------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    contacts: int
    processes: int
    threads: int
    batch: int
    lanes: int
    concurrency: int
    seconds: float  # startCampaign's enqueue to `completed` in the database
    sending_seconds: float  # first to last request the provider received
    sent: int
    duplicates: int

    @property
    def rate(self) -> float:
        return self.sent / self.seconds

    @property
    def sending_rate(self) -> float:
        return self.sent / self.sending_seconds


# "Before the counters": the same code with the counting triggers switched off.
COUNTER_TRIGGERS = (
    "messages_count_insert",
    "messages_count_update",
    "messages_count_delete",
    "interactions_count_insert",
    "interactions_count_delete",
    "interactions_count_update",
    "contacts_count_insert",
    "contacts_count_update",
    "contacts_count_delete",
    "campaigns_count_insert",
    "campaigns_count_update",
    "campaigns_count_delete",
    "categories_count_insert",
    "categories_count_delete",
)


async def _prepare_database(contacts: int, counters: bool = True) -> tuple[str, int]:
    url = await fresh_database(DATABASE)
    conn = await asyncpg.connect(url)
    try:
        if not counters:
            for trigger in COUNTER_TRIGGERS:
                table = trigger.split("_", 1)[0]
                await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
        await conn.execute(
            """
            INSERT INTO contacts (phone, name, attributes)
            SELECT '+3362' || lpad(i::text, 7, '0'), 'Contact ' || i,
                   jsonb_build_object('first_name', 'C' || i)
            FROM generate_series(1, $1) AS i
            """,
            contacts,
        )
        category = await conn.fetchval("INSERT INTO categories (name) VALUES ('all') RETURNING id")
        await conn.execute("INSERT INTO category_contacts SELECT $1, id FROM contacts", category)
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, template_name, template_language, template_body) "
            "VALUES ('bench', 'bench_template', 'en', 'Hi {{first_name}}') RETURNING id"
        )
        await conn.execute("INSERT INTO campaign_categories VALUES ($1, $2)", campaign, category)
    finally:
        await conn.close()
    return url, int(campaign)


def _start_workers(
    env: dict[str, str], log_path: Path, processes: int, threads: int
) -> subprocess.Popen[bytes]:
    """What `herald worker` execs: dramatiq on app.worker.process."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [*DRAMATIQ, "-p", str(processes), "-t", str(threads)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def run_once(
    contacts: int,
    processes: int,
    threads: int,
    batch: int,
    lanes: int,
    concurrency: int,
    counters: bool = True,
) -> Result:
    url, campaign_id = await _prepare_database(contacts, counters)
    clean_dispatch_redis()
    port = free_port()
    fake = multiprocessing.Process(target=_serve_fake, args=(port,), daemon=True)
    fake.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    env.update(
        HERALD_DATABASE_URL=url,
        HERALD_REDIS_URL=redis_url(),
        HERALD_WHATSAPP_PROVIDER="cloud_api",
        HERALD_WHATSAPP_API_BASE_URL=f"http://127.0.0.1:{port}",
        HERALD_WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
        HERALD_WHATSAPP_RATE_PER_SECOND="100000",
        HERALD_WHATSAPP_MESSAGING_LIMIT="100000",
        HERALD_DISPATCH_BATCH_SIZE=str(batch),
        HERALD_DISPATCH_LANES=str(lanes),
        HERALD_DISPATCH_SEND_CONCURRENCY=str(concurrency),
        HERALD_DB_POOL_SIZE="4",
    )
    log_path = ROOT / "bench" / "results" / "dispatch_worker.log"
    log_path.parent.mkdir(exist_ok=True)
    worker = _start_workers(env, log_path, processes, threads)
    try:
        deadline = time.monotonic() + 30
        while (await asyncio.to_thread(log_path.read_text)).count("ready for") < processes:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start; see " + str(log_path))
            await asyncio.sleep(0.05)
        conn = await asyncpg.connect(url)
        try:
            # What startCampaign commits, then what it enqueues after the commit.
            await conn.execute(
                "UPDATE campaigns SET status = 'sending', started_at = now() WHERE id = $1",
                campaign_id,
            )
            began = time.perf_counter()
            open_jobs(load_settings(redis_url=redis_url())).materialize(campaign_id)
            while (
                await conn.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
                != "completed"
            ):
                if time.perf_counter() - began > 300:
                    raise RuntimeError("campaign did not complete; see " + str(log_path))
                await asyncio.sleep(0.02)
            seconds = time.perf_counter() - began
            sent = await conn.fetchval(
                "SELECT count(*) FROM messages WHERE status = 'sent' AND campaign_id = $1",
                campaign_id,
            )
        finally:
            await conn.close()
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"http://127.0.0.1:{port}/stats")).json()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        fake.terminate()
    if stats["sends"] != sent:
        raise RuntimeError(f"provider got {stats['sends']} sends, database says {sent}")
    return Result(
        contacts,
        processes,
        threads,
        batch,
        lanes,
        concurrency,
        seconds,
        stats["seconds"],
        sent,
        stats["duplicates"],
    )


def render(results: list[Result]) -> str:
    lines = [
        "| contacts | worker processes | threads | batch | lanes | in flight | "
        "start→completed s | msg/s end to end | msg/s while sending | duplicate sends |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.contacts:,} | {r.processes} | {r.threads} | {r.batch} | {r.lanes} | "
            f"{r.concurrency} | {r.seconds:.2f} | {r.rate:,.0f} | {r.sending_rate:,.0f} | "
            f"{r.duplicates} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--config",
        action="append",
        metavar="BATCH,LANES,IN_FLIGHT",
        help="repeatable; default: the Settings defaults plus a wider variant",
    )
    parser.add_argument(
        "--without-counters",
        action="store_true",
        help="switch the statistics triggers off (the throughput before the counters)",
    )
    args = parser.parse_args()
    configs = [tuple(int(x) for x in c.split(",")) for c in args.config or ["200,4,32", "500,4,64"]]
    results = []
    for batch, lanes, concurrency in configs:
        result = asyncio.run(
            run_once(
                args.contacts,
                args.processes,
                args.threads,
                batch,
                lanes,
                concurrency,
                counters=not args.without_counters,
            )
        )
        print(
            f"batch={batch} lanes={lanes} in_flight={concurrency}: {result.rate:,.0f} msg/s",
            file=sys.stderr,
        )
        results.append(result)
    print(render(results))


if __name__ == "__main__":
    main()
