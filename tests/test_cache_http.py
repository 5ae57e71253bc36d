"""The real schema's cached fields over HTTP: data, hits, TTLs, round trips, invalidation."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.config import Settings
from tests.conftest import GqlClient

pytestmark = pytest.mark.asyncio

FIVE_CACHED = """{
  messageStats { total sent }
  dashboard { contactCount categoryCount campaignCount }
  categories(first: 5) { nodes { name } }
  contacts(first: 5, search: "+336") { totalCount nodes { phone } }
  active: contacts(first: 5, optedOut: false) { nodes { phone } }
}"""
# Read from PostgreSQL every time: keyset pages on the primary key cost less than a hit.
UNCACHED_LISTS = """{
  campaigns(first: 5) { totalCount nodes { name } }
  contacts(first: 5) { totalCount nodes { phone } }
}"""
DASHBOARD = "{ dashboard { contactCount categoryCount messageStats { total } } }"
CATEGORIES = "{ categories { totalCount nodes { name contactCount } } }"
CREATE_CONTACT = """
mutation ($phone: String!) { createContact(input: {phone: $phone}) { __typename } }
"""
CREATE_CATEGORY = """
mutation ($name: String!) { createCategory(input: {name: $name}) { __typename } }
"""
METRICS = "{ cacheMetrics { redisAvailable namespaces { namespace hits misses errors hitRate } } }"


async def post(http: httpx.AsyncClient, query: str) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query})
    body: dict[str, Any] = response.json()
    assert body.get("errors") is None, body["errors"]
    return body


async def test_five_cached_fields_hit_with_one_round_trip_and_no_sql(
    http: httpx.AsyncClient, gql: GqlClient
) -> None:
    # given
    await gql.ok(CREATE_CONTACT, {"phone": "+33612345678"})
    first = await post(http, FIVE_CACHED)
    # when
    second = await post(http, FIVE_CACHED)
    # then
    assert second["data"] == first["data"]
    assert first["data"]["contacts"] == {"totalCount": 1, "nodes": [{"phone": "+33612345678"}]}
    assert first["data"]["active"] == {"nodes": [{"phone": "+33612345678"}]}
    assert first["data"]["dashboard"] == {"contactCount": 1, "categoryCount": 0, "campaignCount": 0}
    assert first["extensions"]["sqlStatements"] > 0
    assert second["extensions"] == {"sqlStatements": 0, "redisRoundTrips": 1}


async def test_plain_lists_are_read_from_postgresql_each_time(
    http: httpx.AsyncClient, gql: GqlClient, redis: Redis
) -> None:
    # given
    await gql.ok(CREATE_CONTACT, {"phone": "+33612345678"})
    first = await post(http, UNCACHED_LISTS)
    # when
    second = await post(http, UNCACHED_LISTS)
    # then: two pages and two counts (counters, constant time), and nothing stored
    assert second["data"] == first["data"]
    assert second["data"]["contacts"] == {"totalCount": 1, "nodes": [{"phone": "+33612345678"}]}
    assert first["extensions"] == second["extensions"] == {"sqlStatements": 4, "redisRoundTrips": 0}
    stored = [key async for key in redis.scan_iter("cache:*") if not key.startswith(b"cache:gen:")]
    assert stored == []


async def test_ttls_in_redis_follow_the_settings(
    http: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    await post(http, FIVE_CACHED)
    await post(http, "{ dashboard { recentCampaigns { name } } }")
    # values are written just after the answer, each releasing its fill lock: wait for that
    for _ in range(500):
        if not [key async for key in redis.scan_iter("cache:lock:*")]:
            break
        await asyncio.sleep(0.01)
    ttls = {
        "stats": settings.cache_ttl_stats,
        "categories": settings.cache_ttl_categories,
        "contacts": settings.cache_ttl_contacts_list,
        "campaigns": settings.cache_ttl_campaigns_list,
    }
    found: dict[str, list[int]] = {}
    async for key in redis.scan_iter("cache:*"):
        namespace = key.decode().split(":")[1]
        if namespace in ttls:
            found.setdefault(namespace, []).append(await redis.pttl(key))
    assert sorted(found) == sorted(ttls)
    assert len(found["stats"]) == 2  # messageStats and dashboard
    assert len(found["contacts"]) == 2  # the search, the opted-in contacts
    for namespace, pttls in found.items():
        for pttl in pttls:
            assert ttls[namespace] * 1000 - 1000 < pttl <= ttls[namespace] * 1000, namespace


async def test_contact_mutation_invalidates_stats_and_contacts(
    gql: GqlClient, redis: Redis
) -> None:
    # given: a cached dashboard and category list
    await gql.ok(CREATE_CATEGORY, {"name": "VIP"})
    assert (await gql.ok(DASHBOARD))["dashboard"]["contactCount"] == 0
    categories = await gql.ok(CATEGORIES)
    await redis.set("whatsapp:daily:count", 41)
    # when
    await gql.ok(CREATE_CONTACT, {"phone": "+33612345679"})
    # then: the very next read is fresh; the category list itself was not invalidated,
    # only its contactCount (a contact count) is recomputed: one grouped statement
    assert (await gql.ok(DASHBOARD))["dashboard"]["contactCount"] == 1
    after = await gql(CATEGORIES)
    assert after.data == categories
    assert after.sql == 1
    assert await redis.get("whatsapp:daily:count") == b"41"


async def test_category_mutation_invalidates_categories_and_dashboard(gql: GqlClient) -> None:
    # given
    assert (await gql.ok(CATEGORIES))["categories"]["totalCount"] == 0
    assert (await gql.ok(DASHBOARD))["dashboard"]["categoryCount"] == 0
    # when
    await gql.ok(CREATE_CATEGORY, {"name": "Newsletter"})
    # then
    data = await gql.ok(CATEGORIES)
    assert data["categories"] == {
        "totalCount": 1,
        "nodes": [{"name": "Newsletter", "contactCount": 0}],
    }
    assert (await gql.ok(DASHBOARD))["dashboard"]["categoryCount"] == 1


async def test_repeated_dashboard_workload_hit_rate(
    http: httpx.AsyncClient, gql: GqlClient
) -> None:
    before = await gql.ok(METRICS)
    for _ in range(10):
        await post(http, DASHBOARD)
    after = await gql.ok(METRICS)

    def stats(data: dict[str, Any]) -> dict[str, Any]:
        (found,) = [n for n in data["cacheMetrics"]["namespaces"] if n["namespace"] == "stats"]
        return found

    hits = stats(after)["hits"] - stats(before)["hits"]
    misses = stats(after)["misses"] - stats(before)["misses"]
    assert (hits, misses) == (9, 1)
    assert after["cacheMetrics"]["redisAvailable"] is True


async def test_metrics_route_speaks_prometheus_text(http: httpx.AsyncClient) -> None:
    await post(http, DASHBOARD)
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = response.text.splitlines()
    assert "# TYPE herald_cache_hits_total counter" in lines
    assert "herald_cache_redis_up 1.0" in lines
    for namespace in ("stats", "categories", "contacts", "campaigns"):
        assert any(
            line.startswith(f'herald_cache_misses_total{{namespace="{namespace}"}} ')
            for line in lines
        )
    assert any(line.startswith("herald_sql_statements_total ") for line in lines)
