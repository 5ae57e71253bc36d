"""The app's probes and GraphQL endpoint over real HTTP."""

from __future__ import annotations

import httpx
import pytest

from app import __version__
from tests.conftest import GqlClient

pytestmark = pytest.mark.asyncio

VERSION_QUERY = "{ version }"


async def test_healthz_answers(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_database_and_redis(http: httpx.AsyncClient) -> None:
    response = await http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


async def test_graphql_query_over_http(gql: GqlClient) -> None:
    result = await gql(VERSION_QUERY)
    assert result.errors is None
    assert result.data == {"version": __version__}
    assert result.sql == 0
