"""API keys and roles over real HTTP: who may read, write, run campaigns and manage keys."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.types.base import StrawberryObjectDefinition

from app.api_keys.service import hash_key
from app.config import Env, LogFormat, Settings
from app.main import create_app
from schema.common.ids import global_id
from tests import factories
from tests.conftest import GqlClient, Server, create_api_key, serve

pytestmark = pytest.mark.asyncio

CREATE_KEY = """
mutation($name: String!, $role: ApiKeyRole!) {
  createApiKey(input: {name: $name, role: $role}) {
    __typename
    ... on CreateApiKeySuccess { key apiKey { id name role prefix revokedAt } }
    ... on InvalidInputError { field message }
  }
}
"""
REVOKE_KEY = """
mutation($id: ID!) {
  revokeApiKey(id: $id) {
    __typename
    ... on RevokeApiKeySuccess { apiKey { id revokedAt } }
    ... on NotFoundError { entity id }
  }
}
"""
API_KEYS = (
    "query($all: Boolean!) { apiKeys(includeRevoked: $all) { id name role prefix revokedAt } }"
)
CONTACTS = "{ contacts(first: 5) { totalCount nodes { id phone } } }"
CONTACT = "query($id: ID!) { contact(id: $id) { id phone } }"
VERSION = "{ version }"
CREATE_CONTACT = """
mutation($phone: String!) {
  createContact(input: {phone: $phone, name: "Ada"}) {
    __typename ... on CreateContactSuccess { contact { id } }
  }
}
"""
CREATE_CATEGORY = """
mutation($name: String!) {
  createCategory(input: {name: $name}) {
    __typename ... on CreateCategorySuccess { category { id } }
  }
}
"""
CREATE_CAMPAIGN = """
mutation {
  createCampaign(input: {name: "Spring", template: {name: "promo", language: "fr"}}) {
    __typename ... on CreateCampaignSuccess { campaign { id } }
  }
}
"""
START_CAMPAIGN = "mutation($id: ID!) { startCampaign(id: $id) { __typename } }"
PAUSE_CAMPAIGN = "mutation($id: ID!) { pauseCampaign(id: $id) { __typename } }"
CACHE_METRICS = "{ cacheMetrics { redisAvailable } }"


def codes(errors: list[dict[str, Any]] | None) -> list[str]:
    return [e.get("extensions", {}).get("code", "") for e in errors or []]


async def key_of(settings: Settings, role: str) -> str:
    return await create_api_key(settings, role)


# --- keys: creation, storage, revocation ---


async def test_created_key_is_shown_once_and_stored_hashed(
    gql: GqlClient, session: AsyncSession
) -> None:
    # when
    data = await gql.ok(CREATE_KEY, {"name": "frontend", "role": "VIEWER"})
    # then
    success = data["createApiKey"]
    key = success["key"]
    assert success["__typename"] == "CreateApiKeySuccess"
    assert key.startswith("hk_")
    assert len(key) == 3 + 43
    assert success["apiKey"]["prefix"] == key[:9]
    rows = (
        await session.execute(text("SELECT key_hash, role FROM api_keys WHERE name = 'frontend'"))
    ).all()
    assert rows == [(hash_key(key), "viewer")]
    listed = await gql.ok(API_KEYS, {"all": True})
    assert "key" not in listed["apiKeys"][0]
    assert {k["name"] for k in listed["apiKeys"]} == {"frontend", "test admin"}


async def test_new_key_works_and_revoked_key_is_refused_at_once(gql: GqlClient) -> None:
    # given
    created = (await gql.ok(CREATE_KEY, {"name": "temp", "role": "VIEWER"}))["createApiKey"]
    viewer = gql.as_key(created["key"])
    assert (await viewer(CONTACTS)).errors is None
    # when
    revoked = await gql.ok(REVOKE_KEY, {"id": created["apiKey"]["id"]})
    # then: the very next request with it is refused, with no data
    assert revoked["revokeApiKey"]["apiKey"]["revokedAt"] is not None
    result = await viewer(CONTACTS)
    assert result.data is None
    assert codes(result.errors) == ["UNAUTHENTICATED"]
    assert result.errors is not None
    assert "revoked" in result.errors[0]["message"]
    active = await gql.ok(API_KEYS, {"all": False})
    assert [k["name"] for k in active["apiKeys"]] == ["test admin"]


async def test_revoking_an_unknown_key_is_a_typed_error(gql: GqlClient) -> None:
    data = await gql.ok(REVOKE_KEY, {"id": "999999"})
    assert data["revokeApiKey"] == {
        "__typename": "NotFoundError",
        "entity": "ApiKey",
        "id": global_id("ApiKey", 999999),
    }


async def test_blank_key_name_is_refused_and_nothing_written(
    gql: GqlClient, session: AsyncSession
) -> None:
    data = await gql.ok(CREATE_KEY, {"name": "  ", "role": "ADMIN"})
    assert data["createApiKey"]["__typename"] == "InvalidInputError"
    count = (await session.execute(text("SELECT count(*) FROM api_keys"))).scalar_one()
    assert count == 1  # the test's own admin key


# --- no key, bad keys ---


async def test_no_key_gets_unauthenticated_and_no_data(gql: GqlClient) -> None:
    anonymous = gql.as_key(None)
    result = await anonymous(CONTACTS)
    assert result.data is None
    assert codes(result.errors) == ["UNAUTHENTICATED"]
    assert result.errors is not None
    assert "Authorization: Bearer" in result.errors[0]["message"]


async def test_unknown_and_malformed_keys_are_unauthenticated(
    gql: GqlClient, http: httpx.AsyncClient
) -> None:
    assert codes((await gql.as_key("hk_not-a-real-key")(CONTACTS)).errors) == ["UNAUTHENTICATED"]
    for header in ("Basic abc", "Bearer", "hk_raw-key-without-scheme", "Bearer " + "x" * 300):
        response = await http.post(
            "/graphql", json={"query": CONTACTS}, headers={"Authorization": header}
        )
        body = response.json()
        assert body["data"] is None
        assert codes(body["errors"]) == ["UNAUTHENTICATED"], header


async def test_public_version_needs_no_key_and_no_sql(gql: GqlClient) -> None:
    result = await gql.as_key(None)(VERSION)
    assert result.errors is None
    assert result.sql == 0


async def test_caller_lookup_is_one_uncounted_statement_per_request(
    gql: GqlClient, session: AsyncSession
) -> None:
    # given: sibling root fields each check the permission concurrently
    query = "{ a: contacts(first: 1) { nodes { id } } b: categories(first: 1) { nodes { id } } }"
    # when
    result = await gql(query)
    # then: data statements only (the key lookup is reported apart), and last_used_at is set
    assert result.errors is None
    assert result.sql == 2
    used = (
        await session.execute(text("SELECT last_used_at FROM api_keys WHERE name = 'test admin'"))
    ).scalar_one()
    assert used is not None


async def test_probes_and_loopback_metrics_need_no_key(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url) as bare:
        assert (await bare.get("/healthz")).status_code == 200
        assert (await bare.get("/readyz")).status_code == 200
        assert (await bare.get("/metrics")).status_code == 200  # loopback client


async def test_metrics_from_another_address_need_a_key(gql: GqlClient, server: Server) -> None:
    # given: a client behind the local reverse proxy (uvicorn trusts 127.0.0.1's X-Forwarded-For)
    remote = {"X-Forwarded-For": "203.0.113.7"}
    async with httpx.AsyncClient(base_url=server.url) as bare:
        # when / then
        refused = await bare.get("/metrics", headers=remote)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        allowed = await bare.get("/metrics", headers={**remote, **gql.auth_headers})
        assert allowed.status_code == 200
        assert "herald_sql_statements_total" in allowed.text


# --- roles x mutation kinds ---


async def _run_each_kind(client: GqlClient, admin: GqlClient) -> dict[str, list[str]]:
    """Each kind of operation once; returns the error codes each got ([] = allowed)."""
    campaign = (await admin.ok(CREATE_CAMPAIGN))["createCampaign"]["campaign"]["id"]
    outcomes: dict[str, list[str]] = {}
    for kind, query, variables in (
        ("read", CONTACTS, None),
        ("write contact", CREATE_CONTACT, {"phone": "+33612345678"}),
        ("write category", CREATE_CATEGORY, {"name": "VIP"}),
        ("write campaign", CREATE_CAMPAIGN, None),
        ("start campaign", START_CAMPAIGN, {"id": campaign}),
        ("pause campaign", PAUSE_CAMPAIGN, {"id": campaign}),
        ("manage keys", CREATE_KEY, {"name": "x", "role": "VIEWER"}),
        ("cache metrics", CACHE_METRICS, None),
    ):
        result = await client(query, variables)
        if result.errors:
            assert result.data is None or all(v is None for v in result.data.values()), kind
        outcomes[kind] = codes(result.errors)
    return outcomes


@pytest.mark.parametrize(
    ("role", "forbidden"),
    [
        (
            "viewer",
            {
                "write contact",
                "write category",
                "write campaign",
                "start campaign",
                "pause campaign",
                "manage keys",
                "cache metrics",
            },
        ),
        ("editor", {"start campaign", "pause campaign", "manage keys", "cache metrics"}),
        ("admin", set()),
    ],
)
async def test_each_role_against_each_kind_of_operation(
    gql: GqlClient, settings: Settings, session: AsyncSession, role: str, forbidden: set[str]
) -> None:
    # given
    await factories.template(session, "promo", "fr")
    await session.commit()
    client = gql.as_key(await key_of(settings, role))
    # when
    outcomes = await _run_each_kind(client, gql)
    # then
    assert {kind for kind, c in outcomes.items() if c} == forbidden
    assert all(c == ["FORBIDDEN"] for kind, c in outcomes.items() if kind in forbidden)


async def test_viewer_cannot_mutate_and_nothing_is_written(
    gql: GqlClient, settings: Settings, session: AsyncSession
) -> None:
    viewer = gql.as_key(await key_of(settings, "viewer"))
    result = await viewer(CREATE_CONTACT, {"phone": "+33612345678"})
    assert result.data is None
    assert codes(result.errors) == ["FORBIDDEN"]
    assert result.errors is not None
    assert result.errors[0]["extensions"]["requiredRole"] == "editor"
    count = (await session.execute(text("SELECT count(*) FROM contacts"))).scalar_one()
    assert count == 0


async def test_anonymous_mutation_is_unauthenticated_and_writes_nothing(
    gql: GqlClient, session: AsyncSession
) -> None:
    result = await gql.as_key(None)(CREATE_CATEGORY, {"name": "VIP"})
    assert result.data is None
    assert codes(result.errors) == ["UNAUTHENTICATED"]
    count = (await session.execute(text("SELECT count(*) FROM categories"))).scalar_one()
    assert count == 0


async def test_every_root_field_except_version_is_protected(gql: GqlClient) -> None:
    """A new field without a permission class fails here (the SDL shows its directive)."""
    from schema.schema import schema

    sdl = str(schema)
    for root in ("Query", "Mutation"):
        type_ = schema.schema_converter.type_map[root].definition
        assert isinstance(type_, StrawberryObjectDefinition)
        for field in type_.fields:
            if field.python_name == "version":
                continue
            names = {type(d).__name__ for d in field.directives}
            assert names & {"IsViewer", "IsEditor", "IsAdmin"}, f"{root}.{field.name}"
    assert "startCampaign(id: ID!): StartCampaignResult! @isAdmin" in sdl


# --- CSRF: nothing changes state over GET ---


async def test_mutation_over_get_is_refused(
    gql: GqlClient, http: httpx.AsyncClient, session: AsyncSession
) -> None:
    response = await http.get(
        "/graphql",
        params={"query": 'mutation { createCategory(input: {name: "VIP"}) { __typename } }'},
        headers=gql.auth_headers,
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["METHOD_NOT_ALLOWED"]
    count = (await session.execute(text("SELECT count(*) FROM categories"))).scalar_one()
    assert count == 0


async def test_cross_site_form_posts_are_refused(http: httpx.AsyncClient) -> None:
    """A page on another site can only send "simple" bodies without a preflight; none of
    them is accepted, and credentials travel in a header a browser never adds by itself."""
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = await http.post(
            "/graphql",
            content=orjson.dumps(
                {"query": 'mutation { createCategory(input: {name: "x"}) { id } }'}
            ),
            headers={"Content-Type": content_type},
        )
        assert response.status_code == 415, content_type


async def test_query_over_get_still_works(gql: GqlClient, http: httpx.AsyncClient) -> None:
    response = await http.get("/graphql", params={"query": CONTACTS}, headers=gql.auth_headers)
    assert response.status_code == 200
    assert response.json()["data"]["contacts"]["totalCount"] == 0


# --- the CLI and `herald dev`'s key ---


def _herald(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it: the API's database and Redis (revocations are
    announced to the running API processes through Redis)."""
    env = {
        **os.environ,
        "HERALD_DATABASE_URL": str(settings.database_url),
        "HERALD_REDIS_URL": str(settings.redis_url),
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_cli_creates_a_working_key_and_revokes_it(gql: GqlClient, settings: Settings) -> None:
    # when
    created = await asyncio.to_thread(
        _herald, settings, "apikey", "create", "--role", "editor", "--name", "ci"
    )
    # then: the key is printed once, on its own line, and works with its role
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    key = lines[1]
    assert key.startswith("hk_")
    assert "cannot be shown again" in lines[2]
    editor = gql.as_key(key)
    assert (await editor(CREATE_CATEGORY, {"name": "VIP"})).errors is None
    assert codes((await editor(CACHE_METRICS)).errors) == ["FORBIDDEN"]
    listed = await asyncio.to_thread(_herald, settings, "apikey", "list")
    assert "\teditor\tactive\t" in listed.stdout
    assert key not in listed.stdout
    key_id = lines[0].split(" key ")[1].split(" ")[0]
    revoked = await asyncio.to_thread(_herald, settings, "apikey", "revoke", key_id)
    assert revoked.returncode == 0, revoked.stderr
    assert codes((await editor(CONTACTS)).errors) == ["UNAUTHENTICATED"]


async def test_cli_refuses_an_unknown_role(settings: Settings) -> None:
    result = await asyncio.to_thread(
        _herald, settings, "apikey", "create", "--role", "root", "--name", "x"
    )
    assert result.returncode == 2
    assert "invalid choice: 'root'" in result.stderr


async def test_dev_key_is_stable_across_runs_and_replaced_when_revoked(
    gql: GqlClient, settings: Settings, tmp_path: Path
) -> None:
    from app.api_keys.cli import DEV_KEY_FILE, ensure_dev_key

    dev = settings.model_copy(update={"data_dir": str(tmp_path)})
    # when
    first = await asyncio.to_thread(ensure_dev_key, dev)
    second = await asyncio.to_thread(ensure_dev_key, dev)
    # then
    assert first == second
    assert (tmp_path / DEV_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert (await gql.as_key(first)(CACHE_METRICS)).errors is None  # an admin key
    keys = (await gql.ok(API_KEYS, {"all": True}))["apiKeys"]
    dev_key = next(k for k in keys if k["name"] == "herald dev")
    await gql.ok(REVOKE_KEY, {"id": dev_key["id"]})
    third = await asyncio.to_thread(ensure_dev_key, dev)
    assert third != first
    assert (await gql.as_key(third)(CONTACTS)).errors is None


async def test_graphiql_page_carries_the_dev_key_in_dev_only(settings: Settings) -> None:
    key = "hk_" + "d" * 43
    dev = settings.model_copy(update={"graphiql_api_key": key, "graphiql": True})
    prod = dev.model_copy(update={"env": Env.PROD, "log_format": LogFormat.TEXT})
    with serve(dev) as dev_server, serve(prod) as prod_server:
        async with httpx.AsyncClient() as http:
            html = {"Accept": "text/html"}
            dev_page = await http.get(f"{dev_server.url}/graphql", headers=html)
            prod_page = await http.get(f"{prod_server.url}/graphql", headers=html)
    assert dev_page.status_code == prod_page.status_code == 200
    assert f"Bearer {key}" in dev_page.text
    assert key not in prod_page.text


async def test_graphiql_page_carries_the_dev_key_on_loopback_only(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # given: dev mode with a key, bound to every interface
    key = "hk_" + "e" * 43
    dev = settings.model_copy(update={"graphiql_api_key": key, "graphiql": True})
    exposed = dev.model_copy(update={"host": "0.0.0.0"})
    html = {"Accept": "text/html"}
    # when
    with caplog.at_level(logging.WARNING, logger="app.main"), serve(exposed) as server:
        async with httpx.AsyncClient() as http:
            page = await http.get(f"{server.url}/graphql", headers=html)
    # then: the page is served, without the key, and the log says why
    assert page.status_code == 200
    assert key not in page.text
    warnings = [r.getMessage() for r in caplog.records if r.name == "app.main"]
    assert warnings == [
        "GraphiQL: the dev key is left out of the page: HERALD_HOST=0.0.0.0 is not loopback"
    ]

    # and bound to loopback, a caller from another address does not get it either
    app = create_app(dev)
    async with app.router.lifespan_context(app):
        for client, expected in ((("203.0.113.7", 50000), False), (("127.0.0.1", 50000), True)):
            transport = httpx.ASGITransport(app=app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://herald") as http:
                page = await http.get("/graphql", headers=html)
            assert page.status_code == 200
            assert (f"Bearer {key}" in page.text) is expected, client
