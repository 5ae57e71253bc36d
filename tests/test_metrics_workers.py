"""/metrics of `herald serve --workers 2` after a real campaign: every scrape, whichever
process answers it, reports the totals of both processes and of the dispatch workers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from tests.conftest import GqlClient, StartWorker, create_api_key
from tests.fake_whatsapp import WAIT_S, FakeWhatsApp, phone, seed_campaign, worker_env
from tests.test_dispatch_workers import START

pytestmark = pytest.mark.asyncio

HERALD = str(Path(sys.executable).with_name("herald"))
PROBE = "query Probe { categories(first: 5) { nodes { name } } }"
REQUESTS = 40


@contextmanager
def herald_serve(env: dict[str, str], log: IO[bytes], cwd: Path) -> Iterator[str]:
    """`herald serve --workers 2` on a free loopback port, as a real process group, in `cwd`
    (not the checkout, whose `.env` may name a developer's services)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [HERALD, "serve", "--workers", "2", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S  # booting takes long on a busy machine
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("herald serve did not start")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples[(name, frozenset(labels.items()))]


def _pids_that_served(directory: Path, operation: str) -> set[str]:
    """Processes whose own series file holds a request of `operation`."""
    pids = set()
    for path in directory.glob("histogram_*.db"):
        values = MmapedDict(str(path), read_mode=True)
        try:
            if any(operation in key and value for key, value, _ in values.read_all_values()):
                pids.add(path.stem.rsplit("_", 1)[-1])
        finally:
            values.close()
    return pids


async def test_metrics_add_up_over_api_processes_after_a_campaign(
    session: AsyncSession,
    settings: Settings,
    fake: FakeWhatsApp,
    fake_server: tuple[FakeWhatsApp, str],
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    # given `herald serve --workers 2`, a dispatch worker, and a 300-contact campaign
    # with 10 opted-out contacts (never messaged) and 20 numbers the provider rejects
    campaign_id = await seed_campaign(session, 300, opted_out=10)
    fake.undeliverable.update(phone(i).lstrip("+") for i in range(100, 120))
    env = worker_env(settings, fake_server[1], whatsapp_rate_per_second=100_000)
    metrics_dir = tmp_path / "data" / "prometheus"
    metrics_dir.mkdir(parents=True)
    (metrics_dir / "counter_1.db").write_bytes(b"left by an earlier run")
    serve_env = {**env, "HERALD_DATA_DIR": str(tmp_path / "data"), "HERALD_ENV": "dev"}
    serve_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    key = await create_api_key(settings, "admin")
    log_path = tmp_path / "serve.log"
    with log_path.open("ab") as log, herald_serve(serve_env, log, tmp_path) as url:
        worker = await start_worker(processes=1, whatsapp_rate_per_second=100_000)
        limits = httpx.Limits(max_keepalive_connections=0)  # each request a new connection
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            gql = GqlClient(http, key)
            await gql.ok(START, {"id": str(campaign_id)})
            await worker.completed(session, campaign_id)
            worker.stop()

            # when REQUESTS cached reads are spread over both processes, then scraped
            for _ in range(REQUESTS // 8):
                results = await asyncio.gather(*(gql(PROBE) for _ in range(8)))
                assert all(r.errors is None for r in results)
            scrapes = [_samples((await http.get("/metrics")).text) for _ in range(6)]

    # then both processes answered requests, and every scrape has the totals of both
    assert len(_pids_that_served(metrics_dir, "Probe")) == 2
    assert not (metrics_dir / "counter_1.db").exists()  # emptied at start
    campaign = str(campaign_id)
    for samples in scrapes:
        hits = _value(samples, "herald_cache_hits_total", namespace="categories")
        misses = _value(samples, "herald_cache_misses_total", namespace="categories")
        assert (hits + misses, misses >= 1) == (REQUESTS, True)
        ratio = _value(samples, "herald_cache_hit_ratio", namespace="categories")
        assert ratio == round(hits / REQUESTS, 4)
        assert (
            _value(
                samples,
                "herald_request_duration_seconds_count",
                route="/graphql",
                operation="Probe",
            )
            == REQUESTS
        )
        # opted-out contacts get no message; the 20 rejected numbers fail
        sent = _value(samples, "herald_dispatch_messages_total", campaign=campaign, outcome="sent")
        failed = _value(
            samples, "herald_dispatch_messages_total", campaign=campaign, outcome="failed"
        )
        assert (sent, failed) == (270, 20)
        assert _value(samples, "herald_dispatch_metrics_up") == 1
        assert _value(samples, "herald_sql_statements_total") > 0
