"""Request ids, structured logs, per-request metrics and the optional OpenTelemetry switch.

One pure-ASGI middleware gives every HTTP request an id (the caller's X-Request-ID when it
is sane, else a new one), echoes it in the response, and on the way out records the
request's latency (by route, and by GraphQL operation name) and writes one access line.
Every log record made while the request runs carries `request_id` and `operation`,
whichever handler formats it, because they are added by the record factory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from app.cache import total_round_trips
from app.config import ConfigError, LogFormat, Settings
from app.db.engine import total_statements
from app.observability import metrics

REQUEST_ID_HEADER = "X-Request-ID"
# Accept what load balancers and tracing proxies send (uuids, hex, base64-ish), nothing
# that could forge log lines or headers.
_SANE_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")

access_log = logging.getLogger("herald.access")


@dataclass
class RequestInfo:
    """What one request has learned about itself so far (filled in while it runs)."""

    request_id: str
    operation: str | None = None
    graphql: bool = False
    statements: int | None = None
    started: float = field(default_factory=time.perf_counter)


_current: ContextVar[RequestInfo | None] = ContextVar("herald_request", default=None)


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


# Accepted status webhooks arrive by the hundred a second during a send (three per message
# from the provider, simulated or not): their access lines go to DEBUG, rejected ones stay
# at INFO, and the request metrics count them all.
QUIET_ROUTES = {("POST", "/webhooks/whatsapp")}


def _route_of(scope: Scope) -> str:
    """The matched route's template (bounded label set); unmatched paths share one label."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


# Where a request's info is kept in its ASGI scope: the planned path (schema/execution/endpoint.py)
# starts
# it in front of the middleware, and a request it hands over keeps its id and start time.
REQUEST_INFO = "herald.request"


def begin_request(scope: Scope) -> tuple[RequestInfo, Token[RequestInfo | None]]:
    """The request's info, made on first sight, as the current one (log records, labels)."""
    info: RequestInfo | None = scope.get(REQUEST_INFO)
    if info is None:
        info = scope[REQUEST_INFO] = RequestInfo(request_id_from(scope["headers"]))
    return info, _current.set(info)


def end_request(token: Token[RequestInfo | None]) -> None:
    _current.reset(token)


class RequestObservability:
    """ASGI middleware: request id, latency histogram, access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info, token = begin_request(scope)
        status = 500  # unless the app gets as far as starting a response
        done = False

        def finish() -> None:
            nonlocal done
            done = True
            record_request(scope, info, status)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = info.request_id
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Recorded before the last byte leaves: once a client has its answer, the
                # metrics and the access line already include the request.
                finish()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if not done:
                finish()
            end_request(token)


def record_request(scope: Scope, info: RequestInfo, status: int) -> None:
    """The request's latency in the metrics and its access line."""
    elapsed = time.perf_counter() - info.started
    route = _route_of(scope)
    metrics.observe_request(route, (info.operation or "") if info.graphql else None, elapsed)
    metrics.sync_totals(total_round_trips(), total_statements())
    if info.statements is not None:
        metrics.observe_sql(info.operation, info.statements)
    quiet = (scope["method"], route) in QUIET_ROUTES and status < 400
    level = logging.DEBUG if quiet else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    access_log.log(
        level,
        "%s %s %d %.1fms",
        scope["method"],
        scope["path"],
        status,
        elapsed * 1000,
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
        },
    )


class OperationLabel(SchemaExtension):
    """Names the request after its GraphQL operation, for metrics and log lines.

    Runs once the document is parsed (on_execute), so an anonymous document's single
    named operation is found even when the client sent no operationName.
    """

    async def on_operation(self) -> AsyncIterator[None]:
        info = _current.get()
        if info is not None:
            info.graphql = True
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        info = _current.get()
        if info is not None:
            info.operation = self.execution_context.operation_name
        yield


def label_operation(name: str | None) -> None:
    """Names the running request after the GraphQL operation it runs (metrics, log lines)."""
    info = _current.get()
    if info is not None:
        info.graphql = True
        info.operation = name


def record_statements(statements: int) -> None:
    """Called by the transaction boundary with the operation's SQL statement count."""
    info = _current.get()
    if info is not None:
        info.statements = statements


# -- Logging ----------------------------------------------------------------------------------

# Record attributes that are not extras; uvicorn's ANSI-coloured duplicate is dropped too.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}
_factory_installed = False


def _install_record_factory() -> None:
    """Every record gets request_id/operation from the running request (or None)."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        info = _current.get()
        record.request_id = info.request_id if info is not None else None
        record.operation = info.operation if info is not None else None
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, operation, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "operation": getattr(record, "operation", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return super().format(record)


class ConsoleHandler(logging.StreamHandler):
    """The console handler Herald owns (configuring twice replaces it).

    Lines below WARNING logged on a thread running an event loop (the access log, mostly)
    are held and written together, at most `HOLD_S` later: one write per line was a system
    call per request, a tenth of a small page's CPU. A warning or an error, a line from
    any other thread, a full hold and `flush()` (at exit too) write what is held at once,
    in order.
    """

    HOLD_S = 0.05
    HOLD_LINES = 512

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._held: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._held.append(line)
        if record.levelno < logging.WARNING and len(self._held) < self.HOLD_LINES:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                if self._timer is None:
                    self._timer = loop.call_later(self.HOLD_S, self._write_held)
                return
        self.flush()

    def _write_held(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._timer = None
        self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._held:
                held, self._held = "".join(self._held), []
                try:
                    self.stream.write(held)
                except (OSError, ValueError):  # a closed or broken console: nowhere to say it
                    return
            super().flush()


def configure_logging(settings: Settings) -> None:
    """Console logging for the process, from HERALD_LOG_LEVEL and HERALD_LOG_FORMAT.

    The app owns the console: a plain stderr/stdout handler left by `basicConfig` is
    replaced (else every line would print twice); other handlers (files, test capture)
    are kept. In JSON mode uvicorn's own loggers go through the same handler, and its
    access log gives way to Herald's, which carries the request id.
    """
    _install_record_factory()
    root = logging.getLogger()
    for handler in list(root.handlers):
        console = type(handler) is logging.StreamHandler and handler.stream in (
            sys.stderr,
            sys.stdout,
        )
        if isinstance(handler, ConsoleHandler) or console:
            root.removeHandler(handler)
    handler = ConsoleHandler(sys.stderr)
    json_mode = settings.log_format_effective is LogFormat.JSON
    handler.setFormatter(JsonFormatter() if json_mode else TextFormatter())
    root.addHandler(handler)
    root.setLevel(settings.log_level.value)
    # One line per outgoing provider or webhook call would drown the request log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if json_mode:
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            uvicorn_logger = logging.getLogger(name)
            uvicorn_logger.handlers.clear()
            uvicorn_logger.propagate = True
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


# -- Tracing ----------------------------------------------------------------------------------


def tracing_extension(settings: Settings) -> type | None:
    """With HERALD_OTEL_ENABLED, Strawberry's OpenTelemetry extension for the schema to add,
    spans exported over OTLP/HTTP; None otherwise.

    Nothing from OpenTelemetry is imported otherwise. The exporter reads the standard
    OTEL_EXPORTER_OTLP_* variables (endpoint, headers), the resource OTEL_SERVICE_NAME.
    """
    if not settings.otel_enabled:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from strawberry.extensions.tracing import OpenTelemetryExtension
    except ImportError as exc:
        raise ConfigError(
            f"HERALD_OTEL_ENABLED: needs the otel extra (pip install 'herald[otel]'): {exc}"
        ) from None
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        resource = Resource.create({} if named else {"service.name": "herald"})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    return OpenTelemetryExtension
