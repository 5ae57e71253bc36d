"""`python -m bench.fault_bench`: a campaign through three faults, on each broker.

Seeds 3,050 contacts (30 opted out, 20 known invalid, every 100th number undeliverable
at the provider) in a database of its own; runs `herald serve` (the status webhooks)
and two worker process groups reaching Redis through a TCP proxy; a fake Cloud API in
its own process posts signed `sent` then `delivered` webhooks about a second after
each accepted send, with Herald's id in biz_opaque_callback_data. During the campaign:
kill -9 of the busiest worker process at 25% (its group exits and, like a supervisor
would, is started again), pg_terminate_backend of every connection to the database at
50%, and a 3 s Redis outage for the workers at 70%. Nobody retries anything by hand.

At the first COMPLETED it checks that the provider accepted every eligible contact
exactly once (undeliverable numbers excepted) and that nothing is stuck, and reports
how many messages needed reconciliation (left `sending` past the sending timeout by
the killed process) and how long they took to settle. Each broker is also run without
faults in the same invocation: the time ratio is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import orjson
import redis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.config import Settings, load_settings
from app.whatsapp.providers import sign
from app.worker.jobs import open_jobs
from bench.common import (
    clean_dispatch_redis,
    free_port,
    fresh_database,
    redis_url,
    running_server,
    table,
)
from bench.rabbitmq import Node
from bench.tcp_proxy import TcpProxy

DATABASE = "herald_fault_bench"
PHONE_NUMBER_ID = "100200300"
SECRET = "fault-bench-secret"
ROOT = Path(__file__).resolve().parent.parent
DRAMATIQ = [sys.executable, "-m", "dramatiq", "app.worker.process"]
LOGS = ROOT / "bench" / "results"
OPTED_OUT, INVALID = 30, 20
SENDING_TIMEOUT_S, GRACE_S = 15, 120  # the timeout; the default grace


def phone(i: int) -> str:
    return f"3363{i:07d}"


def undeliverable(wa_id: str) -> bool:
    return int(wa_id[-7:]) % 100 == 99


# --- the fake Cloud API, in a process of its own ------------------------------------


def _serve_fake(port: int, webhook_url: str) -> None:
    accepted: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    tasks: set[asyncio.Task[None]] = set()
    client = httpx.AsyncClient(timeout=30)
    posting = asyncio.Semaphore(16)

    async def post_statuses(wamid: str, wa_id: str, message_id: str) -> None:
        """`sent` and `delivered` in one POST about a second later, as Meta may batch them."""
        await asyncio.sleep(1)
        statuses = [
            {
                "id": wamid,
                "status": status,
                "timestamp": str(int(time.time())),
                "recipient_id": wa_id,
                "biz_opaque_callback_data": message_id,
            }
            for status in ("sent", "delivered")
        ]
        value = {"messaging_product": "whatsapp", "statuses": statuses}
        body = orjson.dumps(
            {
                "object": "whatsapp_business_account",
                "entry": [{"id": "0", "changes": [{"field": "messages", "value": value}]}],
            }
        )
        headers = {"X-Hub-Signature-256": sign(SECRET, body)}
        for _ in range(10):  # like Meta, retry a webhook that did not get a 2xx
            async with posting:  # a bounded number in flight keeps the send path fast
                with contextlib.suppress(httpx.HTTPError):
                    response = await client.post(webhook_url, content=body, headers=headers)
                    if response.status_code < 300:
                        return
            await asyncio.sleep(1)

    async def messages(request: Request) -> Response:
        body = await request.json()
        wa_id = str(body["to"])
        attempts[wa_id] += 1
        if undeliverable(wa_id):
            error = {"code": 131026, "message": "Message undeliverable"}
            return JSONResponse({"error": error}, 400)
        accepted[wa_id] += 1
        wamid = f"wamid.fault.{wa_id}.{accepted[wa_id]}"
        task = asyncio.create_task(
            post_statuses(wamid, wa_id, str(body["biz_opaque_callback_data"]))
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return JSONResponse({"messaging_product": "whatsapp", "messages": [{"id": wamid}]})

    async def stats(request: Request) -> Response:
        return JSONResponse({"accepted": accepted, "attempts": attempts})

    app = Starlette(
        routes=[
            Route(f"/{PHONE_NUMBER_ID}/messages", messages, methods=["POST"]),
            Route("/stats", stats),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --- the run -----------------------------------------------------------------------


@dataclass
class Outcome:
    broker: str
    faults: bool
    eligible: int = 0
    rejected: int = 0  # undeliverable at the provider
    accepted_once: int = 0
    duplicates: int = 0
    never_accepted: int = 0
    stuck: int = 0  # pending or sending at COMPLETED
    unknown: int = 0  # left `sending` by a fault: needed reconciliation
    settled_by_webhook: int = 0
    resent: int = 0
    failed_unknown: int = 0
    reconcile_s: float = 0.0  # longest fault → final status of one of its messages
    webhook_lag_s: float = 0.0  # slowest delivered status: recorded send → webhook applied
    seconds: float = 0.0
    faults_done: list[str] = field(default_factory=list)


async def _prepare_database(contacts: int) -> tuple[str, int]:
    url = await fresh_database(DATABASE)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO contacts (phone, name, attributes, opted_out_at, whatsapp_status)
            SELECT '+3363' || lpad(i::text, 7, '0'), 'Contact ' || i,
                   jsonb_build_object('first_name', 'C' || i),
                   CASE WHEN i < $2 THEN now() END,
                   CASE WHEN i >= $2 AND i < $2 + $3 THEN 'invalid' ELSE 'unknown' END
            FROM generate_series(0, $1 - 1) AS i
            """,
            contacts,
            OPTED_OUT,
            INVALID,
        )
        category = await conn.fetchval("INSERT INTO categories (name) VALUES ('all') RETURNING id")
        await conn.execute("INSERT INTO category_contacts SELECT $1, id FROM contacts", category)
        campaign = await conn.fetchval(
            "INSERT INTO campaigns (name, template_name, template_language, template_body) "
            "VALUES ('faults', 'fault_template', 'en', 'Hi {{first_name}}') RETURNING id"
        )
        await conn.execute("INSERT INTO campaign_categories VALUES ($1, $2)", campaign, category)
    finally:
        await conn.close()
    return url, int(campaign)


def _clean_redis() -> None:
    client = redis.Redis.from_url(redis_url())
    for pattern in ("dramatiq:*", "whatsapp:*", "campaign:*"):
        keys = list(client.scan_iter(pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.close()


class Group:
    """One `herald worker` process group (dramatiq -p 2 -t 2)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.start()

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*DRAMATIQ, "-p", "2", "-t", "2"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill_busiest_child(self) -> None:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        children = [int(pid) for pid in path.read_text().split()]

        def cpu(pid: int) -> int:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])

        os.kill(max(children, key=cpu), signal.SIGKILL)

    def supervise(self) -> None:
        """Restart the group if it exited (as systemd or Kubernetes would)."""
        if self.proc.poll() is not None:
            self.start()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


async def run_once(contacts: int, broker: str, faults: bool, rate: int) -> Outcome:
    url, campaign_id = await _prepare_database(contacts)
    clean_dispatch_redis()
    outcome = Outcome(broker, faults)
    node = Node() if broker == "rabbitmq" else None
    proxy = TcpProxy.before(redis_url())
    fake_port = free_port()
    try:
        with running_server(
            url, HERALD_WHATSAPP_APP_SECRET=SECRET, HERALD_LOG_LEVEL="WARNING"
        ) as api:
            fake = multiprocessing.Process(
                target=_serve_fake, args=(fake_port, f"{api}/webhooks/whatsapp"), daemon=True
            )
            fake.start()
            env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
            env.update(
                HERALD_DATABASE_URL=url,
                HERALD_REDIS_URL=proxy.url_for(redis_url()),
                HERALD_WHATSAPP_PROVIDER="cloud_api",
                HERALD_WHATSAPP_API_BASE_URL=f"http://127.0.0.1:{fake_port}",
                HERALD_WHATSAPP_PHONE_NUMBER_ID=PHONE_NUMBER_ID,
                HERALD_WHATSAPP_RATE_PER_SECOND=str(rate),
                HERALD_DISPATCH_BATCH_SIZE="50",
                HERALD_DISPATCH_SENDING_TIMEOUT_S=str(SENDING_TIMEOUT_S),
                HERALD_DISPATCH_RECONCILE_GRACE_S=str(GRACE_S),
                HERALD_DISPATCH_RECOVERY_INTERVAL_S="5",
                HERALD_DB_POOL_SIZE="4",
            )
            settings = load_settings(redis_url=redis_url())
            if node is not None:
                env["HERALD_BROKER_URL"] = node.url
                settings = load_settings(redis_url=redis_url(), broker_url=node.url)
            LOGS.mkdir(exist_ok=True)
            log = LOGS / f"fault_{broker}_worker.log"
            log.write_bytes(b"")
            groups = [Group(env, log), Group(env, log)]
            try:
                await _drive(url, campaign_id, settings, groups, proxy, outcome, fake_port)
            finally:
                for group in groups:
                    group.stop()
                fake.terminate()
    finally:
        proxy.close()
        if node is not None:
            node.stop()
    return outcome


async def _drive(
    url: str,
    campaign_id: int,
    settings: Settings,
    groups: list[Group],
    proxy: TcpProxy,
    outcome: Outcome,
    fake_port: int,
) -> None:
    conn = await asyncpg.connect(url)
    http = httpx.AsyncClient()
    try:
        eligible = await conn.fetchval(
            "SELECT count(*) FROM contacts WHERE opted_out_at IS NULL "
            "AND whatsapp_status <> 'invalid'"
        )
        await asyncio.sleep(3)  # workers boot
        await conn.execute(
            "UPDATE campaigns SET status = 'sending', started_at = now() WHERE id = $1",
            campaign_id,
        )
        began = time.perf_counter()
        open_jobs(settings).materialize(campaign_id)
        plan = [(0.25, "kill -9"), (0.50, "pg_terminate_backend"), (0.70, "redis outage 3 s")]
        # Messages still `sending` a few seconds after a fault, claimed before it: the
        # killed or cut-off worker's. Live workers record their batches well within that.
        snapshots: list[tuple[object, float]] = []  # (fault time in PostgreSQL, perf time)
        orphans: dict[int, float] = {}  # message id -> fault perf time
        settled: dict[int, float] = {}
        while True:
            now = time.perf_counter()
            status = await conn.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
            if status == "completed":
                break
            if now - began > 600:
                raise RuntimeError(f"not completed after 600 s; see {LOGS}")
            stats = (await http.get(f"http://127.0.0.1:{fake_port}/stats")).json()
            done = sum(stats["accepted"].values()) / eligible
            if outcome.faults and plan and done >= plan[0][0]:
                fault_at = await conn.fetchval("SELECT now()")
                await _inject(plan.pop(0)[1], groups, proxy, conn)
                outcome.faults_done.append(f"{now - began:.1f}s")
                snapshots.append((fault_at, time.perf_counter()))
            for group in groups:
                group.supervise()
            for fault_at, fault_perf in [x for x in snapshots if now - x[1] >= 3]:
                snapshots.remove((fault_at, fault_perf))
                rows = await conn.fetch(
                    "SELECT id FROM messages WHERE campaign_id = $1 AND status = 'sending' "
                    "AND updated_at < $2",
                    campaign_id,
                    fault_at,
                )
                orphans.update({row["id"]: fault_perf for row in rows})
            open_ids = [i for i in orphans if i not in settled]
            if open_ids:
                rows = await conn.fetch(
                    "SELECT id FROM messages WHERE id = ANY($1::bigint[]) "
                    "AND status NOT IN ('pending', 'sending')",
                    open_ids,
                )
                settled.update({row["id"]: now for row in rows})
            await asyncio.sleep(0.25)
        end = time.perf_counter()
        outcome.seconds = end - began
        await _account(conn, http, campaign_id, eligible, fake_port, outcome)
        outcome.unknown = len(orphans)
        if orphans:
            outcome.reconcile_s = max(settled.get(i, end) - t for i, t in orphans.items())
            rows = await conn.fetch(
                "SELECT attempts, error FROM messages WHERE id = ANY($1::bigint[])", list(orphans)
            )
            outcome.resent = sum(1 for r in rows if r["attempts"] > 1 and r["error"] is None)
            outcome.failed_unknown = sum(1 for r in rows if r["error"] == "unknown")
            outcome.settled_by_webhook = outcome.unknown - outcome.resent - outcome.failed_unknown
    finally:
        await http.aclose()
        await conn.close()


async def _inject(
    fault: str, groups: list[Group], proxy: TcpProxy, conn: asyncpg.Connection
) -> None:
    print(f"  fault: {fault}", file=sys.stderr)
    if fault == "kill -9":
        groups[0].kill_busiest_child()
    elif fault == "pg_terminate_backend":
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            DATABASE,
        )
    else:
        proxy.cut()
        await asyncio.sleep(3)
        proxy.restore()


async def _account(
    conn: asyncpg.Connection,
    http: httpx.AsyncClient,
    campaign_id: int,
    eligible: int,
    fake_port: int,
    outcome: Outcome,
) -> None:
    stats = (await http.get(f"http://127.0.0.1:{fake_port}/stats")).json()
    accepted: dict[str, int] = stats["accepted"]
    phones = await conn.fetch(
        "SELECT c.phone FROM messages m JOIN contacts c ON c.id = m.contact_id "
        "WHERE m.campaign_id = $1",
        campaign_id,
    )
    wanted = {row["phone"].lstrip("+") for row in phones}
    outcome.eligible = eligible
    outcome.rejected = sum(1 for wa_id in wanted if undeliverable(wa_id))
    outcome.accepted_once = sum(1 for wa_id in wanted if accepted.get(wa_id) == 1)
    outcome.duplicates = sum(n - 1 for n in accepted.values() if n > 1)
    outcome.never_accepted = sum(
        1 for wa_id in wanted if not undeliverable(wa_id) and wa_id not in accepted
    )
    outcome.webhook_lag_s = float(
        await conn.fetchval(
            "SELECT coalesce(max(extract(epoch FROM updated_at - sent_at)), 0) FROM messages "
            "WHERE campaign_id = $1 AND status = 'delivered' AND attempts = 1",
            campaign_id,
        )
    )
    outcome.stuck = await conn.fetchval(
        "SELECT count(*) FROM messages WHERE campaign_id = $1 AND status IN ('pending', 'sending')",
        campaign_id,
    )


def render(outcomes: list[Outcome]) -> str:
    baseline = {o.broker: o.seconds for o in outcomes if not o.faults}
    rows = [
        [
            o.broker,
            "3 faults" if o.faults else "none",
            f"{o.eligible:,}",
            f"{o.accepted_once:,}",
            o.rejected,
            o.duplicates,
            o.never_accepted,
            o.stuck,
            o.unknown,
            o.settled_by_webhook,
            o.resent,
            o.failed_unknown,
            f"{o.reconcile_s:.1f}" if o.unknown else "-",
            f"{o.webhook_lag_s:.0f}",
            f"{o.seconds:.1f}",
            f"{o.seconds / baseline[o.broker]:.2f}" if o.broker in baseline else "-",
        ]
        for o in outcomes
    ]
    headers = [
        "broker",
        "faults",
        "eligible",
        "accepted once",
        "undeliverable",
        "duplicate sends",
        "never sent",
        "stuck",
        "needed reconciliation",
        "settled by webhook",
        "re-sent once",
        "failed unknown",
        "reconciliation s",
        "slowest webhook s",
        "start→completed s",
        "time / no-fault run",
    ]
    return table(headers, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=3_050)
    parser.add_argument("--rate", type=int, default=50, help="sends per second, all workers")
    parser.add_argument(
        "--broker", action="append", choices=["redis", "rabbitmq"], help="default: both"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the no-fault runs")
    args = parser.parse_args()
    outcomes = []
    for broker in args.broker or ["redis", "rabbitmq"]:
        for faults in ([] if args.no_baseline else [False]) + [True]:
            print(f"{broker}, faults={faults}", file=sys.stderr)
            outcomes.append(asyncio.run(run_once(args.contacts, broker, faults, args.rate)))
    print(render(outcomes))
    if any(o.duplicates or o.never_accepted or o.stuck for o in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
