"""Starlette application factory: GraphQL, health probes, and the resources' lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Any

from prometheus_client.core import Metric
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from strawberry.subscriptions import (
    GRAPHQL_SSE_PROTOCOL,
    GRAPHQL_TRANSPORT_WS_PROTOCOL,
    MULTIPART_SUBSCRIPTION_PROTOCOL,
)

from app.api_keys.service import ApiKeyService, bearer_token
from app.cache import total_round_trips
from app.config import Env, Settings, get_settings
from app.db.engine import total_statements
from app.http.graphiql import graphiql_routes, is_loopback
from app.http.limits import BodyLimit, BodySizeLimit
from app.http.webhooks import routes as webhook_routes
from app.live.hub import LiveHub
from app.observability.filters import install_phone_masking
from app.observability.metrics import (
    CACHE_REDIS_UP,
    exposition,
    messaging_limit_families,
    observe_read_pool,
    sync_totals,
)
from app.observability.requests import RequestObservability, configure_logging, tracing_extension
from app.process.runtime import Runtime
from app.senders.outlook import Outlooks
from schema.execution.endpoint import PlannedQueries
from schema.schema import build_schema
from schema.schema import schema as default_schema
from schema.view import HeraldGraphQL

logger = logging.getLogger(__name__)


def _json(body: dict[str, object], status_code: int = 200) -> Response:
    import orjson

    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


async def healthz(_: Request) -> Response:
    """Liveness: the process is up and serving."""
    return _json({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Readiness: PostgreSQL must answer; Redis down only degrades (the cache is optional)."""
    runtime: Runtime = request.app.state.runtime
    body: dict[str, object] = {"status": "ok", "database": "ok", "redis": "ok"}
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        logger.warning("readiness: database unavailable: %s", type(exc).__name__)
        return _json({"status": "unavailable", "database": "unavailable"}, 503)
    try:
        await runtime.redis.ping()
    except (RedisError, OSError):
        body["redis"] = "degraded"
    return _json(body)


async def metrics_access_refused(request: Request, runtime: Runtime) -> Response | None:
    """/metrics: open to the loopback (a local Prometheus agent or sidecar), any valid key
    from elsewhere. It holds counters only, but traffic volumes are nobody else's business."""
    if is_loopback(request.client.host if request.client else None):
        return None
    token = bearer_token(request.headers.get("authorization"))
    if token is not None:
        async with runtime.sessionmaker() as session:
            caller = await ApiKeyService(session).authenticate(token)
            await session.commit()
        if caller is not None:
            return None
    return Response(
        "an API key is required: send `Authorization: Bearer <key>`",
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
        media_type="text/plain",
    )


async def metrics(request: Request) -> Response:
    """Prometheus text: requests, SQL, pool, cache and dispatch counters
    (app/observability/metrics.py)."""
    runtime: Runtime = request.app.state.runtime
    if refused := await metrics_access_refused(request, runtime):
        return refused
    sync_totals(total_round_trips(), total_statements())
    CACHE_REDIS_UP.set(int(runtime.cache.available))  # this process's breaker, now
    observe_read_pool(runtime.reads.open, runtime.reads.idle)
    # Requests, SQL, DB pool, cache and dispatch counters, summed over processes
    # (app/observability/metrics.py).
    body = await exposition(runtime.engine, runtime.redis, await _limit_gauges(runtime))
    return Response(body, media_type="text/plain; version=0.0.4")


async def _limit_gauges(runtime: Runtime) -> list[Metric]:
    """The messaging limit's gauges; none when PostgreSQL cannot say which limit is in force."""
    try:
        async with runtime.sessionmaker() as session:
            window = await Outlooks(session, runtime.redis, runtime.settings).window()
    except (SQLAlchemyError, OSError) as exc:
        logger.warning("/metrics: messaging limit not read: %r", exc)
        return []
    used = None if window.usage is None else window.usage.used
    return messaging_limit_families(window.limit.limit, used)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    configure_logging(settings)
    install_phone_masking()
    tracing = tracing_extension(settings)
    schema = build_schema(tracing) if tracing is not None else default_schema

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = Runtime.open(settings)
        app.state.runtime = runtime
        # Live progress: one pub/sub listener for the process (app/live/hub.py).
        app.state.live = LiveHub(runtime.redis, runtime.sessionmaker, settings)
        await app.state.live.start()
        # The schema, models and modules live for good: keep them out of full collections,
        # which otherwise rescan them all mid-request (p95 of a 1,000-leaf query: 124 → 63 ms).
        gc.freeze()
        # A page allocates thousands of short-lived objects that reference counting frees;
        # young collections every 700 of them only rescan the live ones of the requests in
        # flight (1,000-message page: 8% more requests/s with 10,000).
        gc.set_threshold(10_000, 10, 10)
        try:
            yield
        finally:
            await app.state.live.close()
            await runtime.close()
            for handler in logging.getLogger().handlers:  # lines held for one write
                handler.flush()

    graphql = HeraldGraphQL(
        schema,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        # The current WebSocket protocol only (its handler checks the key before any
        # operation), and the streams over HTTP (schema/streams.py).
        subscription_protocols=[
            GRAPHQL_TRANSPORT_WS_PROTOCOL,
            GRAPHQL_SSE_PROTOCOL,
            MULTIPART_SUBSCRIPTION_PROTOCOL,
        ],
        connection_init_wait_timeout=timedelta(seconds=settings.live_connection_init_timeout_s),
    )
    if settings.env is Env.DEV and settings.graphiql_api_key:  # `herald dev`'s key, pre-filled
        # The page is served without authentication: an admin key in it is fine on loopback
        # only, where nobody else can ask for it.
        if is_loopback(settings.host):
            bearer = f"Bearer {settings.graphiql_api_key}"
            graphql.graphiql_default_headers = {"Authorization": bearer}
        else:
            logger.warning(
                "GraphiQL: the dev key is left out of the page: HERALD_HOST=%s is not loopback",
                settings.host,
            )
    # Every method reaches the view, which refuses all but GET and POST with a JSON 405.
    graphql_route = Route("/graphql", graphql)
    routes = [
        graphql_route,
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *webhook_routes,
        *graphiql_routes(settings),
    ]
    body_limit = BodyLimit(
        settings.request_max_bytes, settings.request_max_bytes_anonymous, graphql_route.path
    )
    middleware = [
        Middleware(RequestObservability),
        Middleware(BodySizeLimit, limit=body_limit),
    ]
    planned = partial(
        PlannedQueries,
        view=graphql,
        schema=schema,
        settings=settings,
        route=graphql_route,
        body_limit=body_limit,
    )
    return HeraldApp(planned, routes=routes, lifespan=lifespan, middleware=middleware)


class HeraldApp(Starlette):
    """Starlette with planned queries answered in front of its middleware
    (schema/execution/endpoint.py), so they skip its calls and wrapped sends (6% of a
    `{ __typename }` request). Load shedding is in front of the application: uvicorn's
    protocol refuses a request before it has a scope (app/http/protocol.py)."""

    def __init__(self, front: Callable[[ASGIApp], ASGIApp], **kwargs: Any) -> None:
        self._front = front
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        return self._front(super().build_middleware_stack())
