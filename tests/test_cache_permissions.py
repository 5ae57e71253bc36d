"""Permissions come before the cache: a wrong order cannot be built, a warm value is not leaked."""

from __future__ import annotations

import pytest
import strawberry

from app.config import Settings
from schema.cache import Cached, CacheOrderError
from schema.extensions import HeraldSchema
from schema.permissions import viewer
from tests.conftest import GqlClient, Server, create_api_key

pytestmark = pytest.mark.asyncio

STATS = "{ messageStats { total sent } dashboard { contactCount } }"


@strawberry.type
class Item:
    @strawberry.field(extensions=[*viewer(), Cached("stats")])
    def count(self) -> int:
        return 1


async def test_cache_listed_after_the_permission_is_refused_at_build() -> None:
    # given a root field whose cache would be consulted before its permission check
    @strawberry.type
    class Query:
        @strawberry.field(extensions=[*viewer(), Cached("stats")])
        def total(self) -> int:
            return 1

    # when / then
    with pytest.raises(CacheOrderError, match=r"Query\.total: list Cached before"):
        HeraldSchema(query=Query)


async def test_cached_root_field_without_permission_is_refused_at_build() -> None:
    @strawberry.type
    class Query:
        @strawberry.field(extensions=[Cached("stats")])
        def total(self) -> int:
            return 1

    with pytest.raises(CacheOrderError, match=r"Query\.total: a cached root field needs"):
        HeraldSchema(query=Query)


async def test_wrong_order_on_a_nested_type_is_refused_too() -> None:
    @strawberry.type
    class Query:
        @strawberry.field(extensions=viewer())
        def item(self) -> Item:
            return Item()

    with pytest.raises(CacheOrderError, match=r"Item\.count: list Cached before"):
        HeraldSchema(query=Query)


async def test_cache_listed_before_the_permission_builds() -> None:
    @strawberry.type
    class Query:
        @strawberry.field(extensions=[Cached("stats"), *viewer()])
        def total(self) -> int:
            return 1

    assert "total: Int! @isViewer" in str(HeraldSchema(query=Query))


@pytest.mark.parametrize("key", [None, "hk_not-a-real-key"], ids=["no-key", "bad-key"])
async def test_warm_cache_without_a_valid_key_is_unauthenticated_with_no_data(
    gql: GqlClient, server: Server, settings: Settings, key: str | None
) -> None:
    # given cached statistics, warmed by a viewer
    viewer_gql = gql.as_key(await create_api_key(settings, "viewer"))
    warm = await viewer_gql(STATS)
    assert warm.errors is None
    assert (await viewer_gql(STATS)).data == warm.data
    metrics = server.app.state.runtime.cache.metrics
    hits = {namespace: m.hits for namespace, m in metrics.namespaces.items()}
    assert hits["stats"] >= 2  # the second read was served from the cache

    # when a caller without a valid key asks for the same fields
    refused = await gql.as_key(key)(STATS)

    # then nothing of the cached value comes back, and the cache was not even consulted
    assert refused.status == 200
    assert refused.data is None
    assert refused.errors is not None
    assert [e["extensions"]["code"] for e in refused.errors] == ["UNAUTHENTICATED"]
    assert {namespace: m.hits for namespace, m in metrics.namespaces.items()} == hits
