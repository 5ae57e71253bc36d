"""Starlette application factory: GraphQL, health probes, and the resources' lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import Settings, get_settings
from app.runtime import Runtime
from app.web import HeraldGraphQL
from schema.schema import schema

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


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = Runtime.open(settings)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.close()

    graphql = HeraldGraphQL(schema, graphql_ide="graphiql" if settings.graphiql_enabled else None)
    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
