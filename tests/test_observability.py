"""/metrics series, request ids in headers and log records, JSON log lines, the tracing switch."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from app.config import Settings
from app.observability.metrics import DISPATCH_KEY, prepare_multiprocess_dir, record_dispatch
from app.observability.requests import ConsoleHandler, JsonFormatter
from tests.conftest import ROOT, GqlClient

pytestmark = pytest.mark.asyncio

DASHBOARD = """
query Dashboard {
  dashboard { contactCount campaignCount categoryCount }
}
"""

VERSION = "query Version { version }"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_latency_histogram_counts_each_request_of_an_operation(
    http: httpx.AsyncClient, gql: GqlClient
) -> None:
    # given
    before = await scrape(http)

    # when
    results = [await gql(DASHBOARD) for _ in range(3)]
    await gql(VERSION)

    # then
    after = await scrape(http)
    series = "herald_request_duration_seconds_count"
    dashboard = {"route": "/graphql", "operation": "Dashboard"}
    assert value(after, series, **dashboard) - value(before, series, **dashboard) == 3
    version = {"route": "/graphql", "operation": "Version"}
    assert value(after, series, **version) - value(before, series, **version) == 1
    le_10s = {**dashboard, "le": "10.0"}
    bucket = "herald_request_duration_seconds_bucket"
    assert value(after, bucket, **le_10s) - value(before, bucket, **le_10s) == 3
    # SQL per request: exactly the statements each response reported
    sql = {"operation": "Dashboard"}
    count, total = (
        "herald_sql_statements_per_request_count",
        "herald_sql_statements_per_request_sum",
    )
    assert value(after, count, **sql) - value(before, count, **sql) == 3
    assert value(after, total, **sql) - value(before, total, **sql) == sum(r.sql for r in results)
    assert all(r.errors is None for r in results)


async def test_anonymous_and_non_graphql_requests_are_labelled(
    http: httpx.AsyncClient, gql: GqlClient
) -> None:
    # given
    before = await scrape(http)

    # when
    await gql("{ version }")
    await http.get("/healthz")
    await http.get("/healthz")
    assert (await http.get("/no-such-route")).status_code == 404

    # then
    after = await scrape(http)
    series = "herald_request_duration_seconds_count"

    def delta(**labels: str) -> float:
        return value(after, series, **labels) - value(before, series, **labels)

    assert delta(route="/graphql", operation="anonymous") == 1
    assert delta(route="/healthz", operation="") == 2
    assert delta(route="unmatched", operation="") == 1


async def test_pool_gauges_match_the_settings(
    http: httpx.AsyncClient, gql: GqlClient, settings: Settings
) -> None:
    # given: the pool has served a request
    await gql(DASHBOARD)

    # when
    samples = await scrape(http)

    # then: nothing is in use between requests
    assert value(samples, "herald_db_pool_size") == settings.db_pool_size
    assert value(samples, "herald_db_pool_checked_out") == 0
    assert value(samples, "herald_db_pool_checked_in") >= 1
    assert value(samples, "herald_db_pool_overflow") == 0


async def test_cache_counters_come_from_the_cache_service(
    http: httpx.AsyncClient, gql: GqlClient
) -> None:
    # given: a cold cache (Redis is flushed before each test)
    before = await scrape(http)
    await gql(DASHBOARD)
    mid = await scrape(http)

    # when: the same question again
    await gql(DASHBOARD)
    after = await scrape(http)

    # then: the first answer missed, the second hit as often
    hits, misses = "herald_cache_hits_total", "herald_cache_misses_total"
    missed = value(mid, misses, namespace="stats") - value(before, misses, namespace="stats")
    assert missed >= 1
    assert value(after, hits, namespace="stats") - value(mid, hits, namespace="stats") == missed
    assert value(after, misses, namespace="stats") == value(mid, misses, namespace="stats")


async def test_dispatch_counters_per_campaign(http: httpx.AsyncClient, settings: Settings) -> None:
    # given
    redis = aioredis.Redis.from_url(settings.redis_url or "")
    try:
        # when: two batches of campaign 7 and one of campaign 8, from any worker
        await record_dispatch(redis, 7, sent=3, failed=1)
        await record_dispatch(redis, 7, sent=2, rate_limited=5)
        await record_dispatch(redis, 8, failed=4)
        with pytest.raises(ValueError, match="negative"):
            await record_dispatch(redis, 9, sent=-1)
        assert await redis.hget(DISPATCH_KEY, "9:sent") is None
    finally:
        await redis.aclose()

    # then
    samples = await scrape(http)
    series = "herald_dispatch_messages_total"
    assert value(samples, series, campaign="7", outcome="sent") == 5
    assert value(samples, series, campaign="7", outcome="failed") == 1
    assert value(samples, series, campaign="7", outcome="rate_limited") == 5
    assert value(samples, series, campaign="8", outcome="failed") == 4
    assert (series, frozenset({("campaign", "9"), ("outcome", "sent")})) not in samples
    assert value(samples, "herald_dispatch_metrics_up") == 1


async def test_request_id_is_echoed_and_in_the_log_records(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    caplog.set_level(logging.INFO, logger="herald.access")

    # when
    response = await http.post(
        "/graphql", json={"query": DASHBOARD}, headers={"X-Request-ID": "req-abc.123"}
    )

    # then
    assert response.headers["x-request-id"] == "req-abc.123"
    access = [r for r in caplog.records if r.name == "herald.access"]
    mine = [r for r in access if getattr(r, "request_id", None) == "req-abc.123"]
    assert len(mine) == 1
    assert mine[0].operation == "Dashboard"  # type: ignore[attr-defined]
    assert mine[0].status == 200  # type: ignore[attr-defined]


async def test_a_request_the_plan_hands_over_keeps_its_id_and_one_access_line(
    http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # given: a POST the planned path reads, then hands to the view (it does not validate)
    caplog.set_level(logging.INFO, logger="herald.access")

    # when
    response = await http.post(
        "/graphql", json={"query": "{ nope }"}, headers={"X-Request-ID": "req-handed.1"}
    )

    # then: the view answered, under the same id, and the request was recorded once
    assert response.status_code == 200
    assert response.json()["errors"][0]["message"].startswith("Cannot query field 'nope'")
    assert response.headers["x-request-id"] == "req-handed.1"
    mine = [r for r in caplog.records if getattr(r, "request_id", None) == "req-handed.1"]
    access = [r for r in mine if r.name == "herald.access"]
    assert len(access) == 1
    assert access[0].status == 200  # type: ignore[attr-defined]


async def test_request_id_is_generated_when_missing_or_unsafe(http: httpx.AsyncClient) -> None:
    # when
    plain = [await http.get("/healthz") for _ in range(2)]
    unsafe = await http.get("/healthz", headers={"X-Request-ID": "a b<script>"})
    too_long = await http.get("/healthz", headers={"X-Request-ID": "x" * 129})

    # then
    ids = [r.headers["x-request-id"] for r in (*plain, unsafe, too_long)]
    assert len(set(ids)) == 4
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


async def test_json_log_lines_parse(http: httpx.AsyncClient) -> None:
    # given: Herald's JSON formatter on a handler of our own
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logging.getLogger("herald.access").addHandler(handler)
    try:
        # when
        await http.post(
            "/graphql", json={"query": VERSION}, headers={"X-Request-ID": "json-line-1"}
        )
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("herald.access").exception("failed with %s", "context")
    finally:
        logging.getLogger("herald.access").removeHandler(handler)

    # then: one object per line, each with the fixed keys
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    request, failure = lines
    assert set(request) >= {"time", "level", "logger", "message", "request_id", "operation"}
    assert request["request_id"] == "json-line-1"
    assert request["operation"] == "Version"
    assert request["level"] == "INFO"
    assert request["logger"] == "herald.access"
    assert request["status"] == 200
    assert request["route"] == "/graphql"
    assert request["time"].endswith("+00:00")
    assert failure["message"] == "failed with context"
    assert failure["request_id"] is None
    assert "RuntimeError: boom" in failure["exc_info"]


async def _python(code: str, **env: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(code),
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode or 0, out.decode()


TRACING_OFF = """
    import sys
    if {blocked}:
        sys.modules["opentelemetry"] = None  # as if the extra were not installed
    from app.config import ConfigError, load_settings
    from app.main import create_app
    create_app(load_settings(database_url="postgresql://x@127.0.0.1/x", otel_enabled=False))
    # (redis-py itself imports the API package when present; ours stay out)
    ours = ("opentelemetry.sdk.trace", "opentelemetry.exporter", "strawberry.extensions.tracing.")
    assert not [m for m in sys.modules if m.startswith(ours) and sys.modules[m]]
    from schema.schema import schema
    assert "OpenTelemetryExtension" not in [getattr(e, "__name__", "") for e in schema.extensions]
    if {blocked}:
        try:
            create_app(load_settings(database_url="postgresql://x@127.0.0.1/x", otel_enabled=True))
        except ConfigError as exc:
            assert "HERALD_OTEL_ENABLED" in str(exc) and "herald[otel]" in str(exc), exc
        else:
            raise AssertionError("enabled without the extra must fail")
    print("ok")
"""


@pytest.mark.parametrize("blocked", [False, True], ids=["extra-present", "extra-missing"])
async def test_tracing_off_imports_and_requires_nothing(blocked: bool) -> None:
    code, out = await _python(TRACING_OFF.format(blocked=blocked))
    assert (code, out.strip().splitlines()[-1]) == (0, "ok"), out


TRACING_ON = """
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from starlette.testclient import TestClient
    from app.config import load_settings
    from app.main import create_app

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    app = create_app(load_settings(otel_enabled=True))
    with TestClient(app) as client:
        body = client.post("/graphql", json={"query": "query Version { version }"}).json()
    assert body["data"]["version"], body
    names = sorted(span.name for span in exporter.get_finished_spans())
    assert "GraphQL Query: Version" in names, names
    print("ok")
"""


async def test_tracing_on_exports_graphql_spans(settings: Settings) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the [otel] extra is not installed")
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    code, out = await _python(
        TRACING_ON,
        HERALD_DATABASE_URL=settings.database_url or "",
        HERALD_REDIS_URL=settings.redis_url or "",
    )
    assert (code, out.strip().splitlines()[-1]) == (0, "ok"), out


MULTIPROCESS_WORKER = """
    import asyncio
    from app.config import load_settings
    from app.db.engine import create_engine
    from app.observability import metrics
    from redis.asyncio import Redis
    assert metrics.MULTIPROCESS
    metrics.observe_request("/graphql", "Dashboard", 0.002)
    metrics.observe_sql("Dashboard", 3)
    if {render}:
        engine = create_engine(load_settings(database_url="postgresql://x@127.0.0.1:1/x"))
        redis = Redis(port=1, socket_connect_timeout=0.2)  # down: the scrape still answers
        print(asyncio.run(metrics.exposition(engine, redis)).decode())
"""


async def test_multiprocess_mode_sums_every_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a directory a previous run left a file in, prepared as `herald serve` would
    (tmp_path / "counter_999.db").write_bytes(b"stale")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "restored after the test")
    directory = prepare_multiprocess_dir(tmp_path)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == directory
    assert os.listdir(tmp_path) == []
    env = {"PROMETHEUS_MULTIPROC_DIR": directory}
    # and: two workers that each served one Dashboard request
    for _ in range(2):
        code, out = await _python(MULTIPROCESS_WORKER.format(render=False), **env)
        assert code == 0, out

    # when: a third process answers the scrape
    code, out = await _python(MULTIPROCESS_WORKER.format(render=True), **env)
    assert code == 0, out

    # then: all three requests are counted, and Redis being down is reported, not raised
    samples: Samples = {}
    for family in text_string_to_metric_families(out):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    labels = {"route": "/graphql", "operation": "Dashboard"}
    assert value(samples, "herald_request_duration_seconds_count", **labels) == 3
    assert value(samples, "herald_sql_statements_per_request_sum", operation="Dashboard") == 9
    assert value(samples, "herald_dispatch_metrics_up") == 0


class _Console(io.StringIO):
    """A console that records each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


async def test_console_lines_are_written_together_and_warnings_at_once() -> None:
    # given
    console = _Console()
    handler = ConsoleHandler(console)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("herald.test.console")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        # when: three access lines on the event loop
        for n in range(3):
            logger.info("line %d", n)
        held = list(console.writes)
        for _ in range(100):
            if console.writes:
                break
            await asyncio.sleep(ConsoleHandler.HOLD_S)
        # then: held, then written in one write
        assert held == []
        assert console.writes == ["line 0\nline 1\nline 2\n"]
        # when: a line, then a warning
        logger.info("held")
        logger.warning("urgent")
        # then: both at once, in order
        assert console.writes[1:] == ["held\nurgent\n"]
    finally:
        logger.removeHandler(handler)
