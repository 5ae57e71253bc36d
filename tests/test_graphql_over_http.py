"""GraphQL over HTTP as the spec has it, on both paths (the planned one and Strawberry's view):
the answer's media type from `Accept`, its status, JSON refusals, no `data` on request
errors, GET, the operation a request names, and persisted documents (Apollo's automatic
persisted queries, trusted manifests). Each request goes to a server with planned queries on
and one with them off, and both must answer the same status, headers and bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from app.config import Settings
from tests.conftest import Server, serve
from tests.ws_client import gql_socket

pytestmark = pytest.mark.asyncio

SEARCH = "query($search: String) { contacts(search: $search) { totalCount } }"
VERSION = "{ version }"
CONTACTS = "query Contacts($first: Int) { contacts(first: $first) { totalCount } }"
CREATE = 'mutation Create { createCategory(input: {name: "x"}) { __typename } }'
GRAPHQL_RESPONSE = "application/graphql-response+json; charset=utf-8"
JSON = "application/json; charset=utf-8"
APOLLO = "application/graphql-response+json,application/json;q=0.9"
URQL = (
    "application/graphql-response+json, application/graphql+json, application/json, "
    "text/event-stream, multipart/mixed"
)
# Headers that differ from one request to the next whatever the path.
_VARYING = {"date", "x-request-id", "server-timing", "content-length"}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(hash_: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": hash_}}


async def both(
    servers: tuple[Server, Server], key: str | None, method: str, **request: Any
) -> httpx.Response:
    """The request sent to the planned and the standard path; the planned answer, once both
    were found equal in status, headers and body."""
    headers = dict(request.pop("headers", {}))
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    responses = []
    for server in servers:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            responses.append(await http.request(method, "/graphql", headers=headers, **request))
    planned, standard = responses
    assert planned.status_code == standard.status_code, (planned.text, standard.text)
    assert planned.content == standard.content
    assert _stable(planned.headers) == _stable(standard.headers)
    return planned


def _stable(headers: httpx.Headers) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers.multi_items() if k not in _VARYING]


def codes(response: httpx.Response) -> list[str]:
    return [e["extensions"]["code"] for e in response.json()["errors"]]


async def answered_by_plan(server: Server) -> float:
    async with httpx.AsyncClient(base_url=server.url) as http:
        text = (await http.get("/metrics")).text
    prefix = 'herald_planned_queries_total{outcome="answered"} '
    return next(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


# -- The answer's media type -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        pytest.param(None, JSON, id="none: the legacy type"),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/json", JSON),
        ("application/graphql-response+json", GRAPHQL_RESPONSE),
        pytest.param(APOLLO, GRAPHQL_RESPONSE, id="Apollo's"),
        pytest.param(URQL, GRAPHQL_RESPONSE, id="urql's"),
        pytest.param("application/json, application/graphql-response+json", JSON, id="first"),
        ("application/graphql-response+json;q=0.5, application/json", JSON),
        pytest.param("application/json;q=0, */*", GRAPHQL_RESPONSE, id="json refused"),
        pytest.param("text/html,*/*;q=0.8", JSON, id="a browser's"),
    ],
)
async def test_a_query_is_answered_in_the_media_type_accept_prefers(
    servers: tuple[Server, Server], admin_key: str, accept: str | None, content_type: str
) -> None:
    headers = {} if accept is None else {"Accept": accept}
    for method in ("POST", "GET"):
        # when
        if method == "POST":
            response = await both(
                servers, admin_key, method, json={"query": CONTACTS}, headers=headers
            )
        else:
            response = await both(
                servers, admin_key, method, params={"query": CONTACTS}, headers=headers
            )
        # then
        assert response.status_code == 200
        assert response.headers["content-type"] == content_type
        assert response.json()["data"] == {"contacts": {"totalCount": 0}}


async def test_an_accept_without_json_is_refused_with_406(
    servers: tuple[Server, Server], admin_key: str
) -> None:
    response = await both(
        servers, admin_key, "POST", json={"query": VERSION}, headers={"Accept": "text/html"}
    )
    assert response.status_code == 406
    assert response.headers["content-type"] == JSON
    assert codes(response) == ["NOT_ACCEPTABLE"]


# -- Request errors: no data, and a 4xx only in the new media type -----------------------------


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        pytest.param({"query": "{ version"}, "PARSE_FAILED", id="does not parse"),
        pytest.param({"query": "{ nothing }"}, "VALIDATION_FAILED", id="does not validate"),
        pytest.param(
            {"query": CONTACTS, "variables": {"first": "ten"}},
            "VALIDATION_FAILED",
            id="variables that do not coerce",
        ),
        pytest.param(
            {"query": "query A { version } query B { version }"},
            "OPERATION_NOT_FOUND",
            id="several operations, no name",
        ),
        pytest.param(
            {"query": VERSION, "operationName": "Missing"},
            "OPERATION_NOT_FOUND",
            id="unknown operation name",
        ),
        pytest.param(
            {"query": SEARCH, "variables": {"search": "x" * 101}},
            "BAD_USER_INPUT",
            id="an argument over its declared length",
        ),
    ],
)
async def test_a_request_error_has_no_data_and_its_status_follows_the_media_type(
    servers: tuple[Server, Server], admin_key: str, payload: dict[str, Any], code: str
) -> None:
    query = {k: orjson.dumps(v).decode() if k == "variables" else v for k, v in payload.items()}
    for accept, status in ((APOLLO, 400), ("application/json", 200), (None, 200)):
        headers = {} if accept is None else {"Accept": accept}
        for request in ({"json": payload}, {"params": query}):
            # when: POSTed, or sent as a GET
            method = "POST" if "json" in request else "GET"
            response = await both(servers, admin_key, method, headers=headers, **request)
            # then
            assert response.status_code == status, (accept, method)
            assert response.headers["content-type"] == (
                GRAPHQL_RESPONSE if accept == APOLLO else JSON
            )
            assert "data" not in response.json()
            assert codes(response) == [code]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(
            {"query": "query A { version } query B { version }"},
            "Must provide operation name if query contains multiple operations.",
            id="several operations, no name",
        ),
        pytest.param(
            {"query": "subscription A { version: __typename } query B { version }"},
            "Must provide operation name if query contains multiple operations.",
            id="a subscription among them",
        ),
        pytest.param(
            {"query": VERSION, "operationName": "Missing"},
            "Unknown operation named 'Missing'.",
            id="unknown operation name",
        ),
    ],
)
async def test_the_operation_a_socket_names_is_checked_too(
    servers: tuple[Server, Server], admin_key: str, payload: dict[str, Any], message: str
) -> None:
    for server in servers:
        async with gql_socket(server.url) as socket:
            assert (await socket.init(admin_key))["type"] == "connection_ack"
            # when
            await socket.send({"id": "1", "type": "subscribe", "payload": payload})
            messages = [m async for m in socket.events("1")]
        # then: the operation's `error`, as JSON; nothing ran
        assert messages == [
            {
                "id": "1",
                "type": "error",
                "payload": [{"message": message, "extensions": {"code": "OPERATION_NOT_FOUND"}}],
            }
        ]


@pytest.mark.parametrize(
    ("keyed", "query", "code", "path"),
    [
        # no key, so the protected field errs while the operation runs
        pytest.param(
            False,
            "{ version dashboard { contactCount } }",
            "UNAUTHENTICATED",
            ["dashboard"],
            id="a protected field without a key",
        ),
        # a page size the field refuses as it runs (the same code as a request error's)
        pytest.param(
            True,
            "{ version contacts(first: 101) { totalCount } }",
            "BAD_USER_INPUT",
            ["contacts"],
            id="a field refusing its argument",
        ),
    ],
)
async def test_an_error_while_executing_keeps_data_and_200(
    servers: tuple[Server, Server],
    admin_key: str,
    keyed: bool,
    query: str,
    code: str,
    path: list[str],
) -> None:
    response = await both(
        servers,
        admin_key if keyed else None,
        "POST",
        json={"query": query},
        headers={"Accept": APOLLO},
    )
    assert response.status_code == 200
    assert response.json()["data"] is None  # the non-null field took its parent with it
    [error] = response.json()["errors"]
    assert (error["extensions"]["code"], error["path"]) == (code, path)


async def test_variable_errors_speak_json(servers: tuple[Server, Server], admin_key: str) -> None:
    # given: an input object whose required field is null
    document = (
        "mutation($input: CreateContactInput!) { createContact(input: $input) { __typename } }"
    )
    response = await both(
        servers,
        admin_key,
        "POST",
        json={"query": document, "variables": {"input": {"phone": None}}},
    )
    [error] = response.json()["errors"]
    assert error["message"] == (
        "Variable '$input' has invalid value at .phone: "
        "Expected value of non-null type 'String!' not to be null."
    )


SCHEDULE = "mutation($at: DateTime!) { scheduleCampaign(id: 1, at: $at) { __typename } }"
FIRST = "query($first: Int) { contacts(first: $first) { totalCount } }"


@pytest.mark.parametrize(
    ("document", "variables", "message"),
    [
        pytest.param(
            SCHEDULE,
            {"at": [None]},
            "Variable '$at' has invalid value: "
            "DateTime cannot represent a non string value: [null]",
            id="DateTime, a list",
        ),
        pytest.param(
            SCHEDULE,
            {"at": {"day": None, "late": True}},
            "Variable '$at' has invalid value: "
            "DateTime cannot represent a non string value: {'day': null, 'late': true}",
            id="DateTime, an object",
        ),
        pytest.param(
            SCHEDULE,
            {"at": "None"},
            "Variable '$at' has invalid value: DateTime cannot represent value: 'None' "
            "(ISO 8601, e.g. 2026-12-06T09:30:00+01:00)",
            id="DateTime, a string that says None",
        ),
        pytest.param(
            "mutation { scheduleCampaign(id: 1, at: [null]) { __typename } }",
            None,
            "DateTime cannot represent a non string value: [null]",
            id="DateTime, a literal",
        ),
        pytest.param(
            FIRST,
            {"first": [None, False]},
            "Variable '$first' has invalid value: "
            "Int cannot represent non-integer value: [null, false]",
            id="Int",
        ),
    ],
)
async def test_values_that_do_not_coerce_are_shown_in_json_words(
    servers: tuple[Server, Server],
    admin_key: str,
    document: str,
    variables: dict[str, Any] | None,
    message: str,
) -> None:
    # when
    payload = {"query": document, "variables": variables}
    response = await both(servers, admin_key, "POST", json=payload, headers={"Accept": APOLLO})
    async with gql_socket(servers[0].url) as socket:
        assert (await socket.init(admin_key))["type"] == "connection_ack"
        await socket.send({"id": "1", "type": "subscribe", "payload": payload})
        over_socket = [m async for m in socket.events("1")]

    # then: a request error whose message says what graphql-core's own scalars would, in
    # the JSON the client sent (null, true), never Python's None or True
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert (error["message"], error["extensions"]["code"]) == (message, "VALIDATION_FAILED")
    assert error["locations"]
    [sent] = [m for m in over_socket if m["type"] in ("next", "error")]
    errors = sent["payload"] if sent["type"] == "error" else sent["payload"]["errors"]
    assert [e["message"] for e in errors] == [message]


# -- Refusals of HTTP's own kind, as JSON ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "request_", "status", "code"),
    [
        pytest.param("PUT", {"json": {"query": VERSION}}, 405, "METHOD_NOT_ALLOWED", id="PUT"),
        pytest.param(
            "POST",
            {"content": b'{"query": "{ version }"}'},
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            id="no content type",
        ),
        pytest.param(
            "POST",
            {"content": b"{", "headers": {"Content-Type": "application/json"}},
            400,
            "BAD_REQUEST",
            id="not JSON",
        ),
        pytest.param("POST", {"json": {"query": 1}}, 400, "BAD_REQUEST", id="query not a string"),
        pytest.param("POST", {"json": {"qeury": VERSION}}, 400, "BAD_REQUEST", id="no query"),
        pytest.param(
            "POST", {"json": [{"query": VERSION}]}, 400, "BATCHING_NOT_SUPPORTED", id="a batch"
        ),
        pytest.param(
            "POST",
            {"content": b"x" * 2_000_000, "headers": {"Content-Type": "application/json"}},
            413,
            "REQUEST_TOO_LARGE",
            id="too large",
        ),
        pytest.param(
            "GET", {"params": {"query": CREATE}}, 405, "METHOD_NOT_ALLOWED", id="GET mutation"
        ),
    ],
)
async def test_a_refusal_is_a_json_graphql_response(
    servers: tuple[Server, Server],
    admin_key: str,
    method: str,
    request_: dict[str, Any],
    status: int,
    code: str,
) -> None:
    for accept, content_type in ((APOLLO, GRAPHQL_RESPONSE), (None, JSON)):
        headers = dict(request_.get("headers", {}))
        if accept is not None:
            headers["Accept"] = accept
        # when
        response = await both(servers, admin_key, method, **{**request_, "headers": headers})
        # then
        assert response.status_code == status
        assert response.headers["content-type"] == content_type
        assert "data" not in response.json()
        assert codes(response) == [code]
    if status == 405:
        assert response.headers["allow"] == ("POST" if method == "GET" else "GET, POST")


# -- GET, and the planned path whatever the client --------------------------------------------


async def test_a_query_is_answered_by_its_plan_from_post_get_or_hash(
    servers: tuple[Server, Server], admin_key: str
) -> None:
    # given
    planned, _ = servers
    hash_ = sha256(CONTACTS)
    await both(servers, admin_key, "POST", json={"query": CONTACTS, "extensions": apq(hash_)})
    before = await answered_by_plan(planned)
    # when: as Apollo POSTs it, as urql GETs it, and by its hash over POST and GET
    sent = [
        both(servers, admin_key, "POST", json={"query": CONTACTS}, headers={"Accept": APOLLO}),
        both(servers, admin_key, "GET", params={"query": CONTACTS}, headers={"Accept": URQL}),
        both(servers, admin_key, "POST", json={"extensions": apq(hash_)}),
        both(
            servers,
            admin_key,
            "GET",
            params={"extensions": orjson.dumps(apq(hash_)).decode()},
            headers={"Accept": URQL},
        ),
    ]
    responses = [await request for request in sent]
    # then: four answers, each by the plan
    assert [r.json()["data"] for r in responses] == [{"contacts": {"totalCount": 0}}] * 4
    assert await answered_by_plan(planned) - before == 4


# -- Automatic persisted queries ---------------------------------------------------------------


async def test_automatic_persisted_queries(
    servers: tuple[Server, Server], admin_key: str, settings: Settings
) -> None:
    document = "query Persisted { contacts(first: 1) { totalCount } }"
    hash_ = sha256(document)
    # when: the hash alone, unknown
    for accept, status in ((APOLLO, 404), (None, 200)):
        headers = {} if accept is None else {"Accept": accept}
        missing = await both(
            servers, admin_key, "POST", json={"extensions": apq(hash_)}, headers=headers
        )
        # then: Apollo's link asks again with the text
        assert missing.status_code == status
        assert missing.json() == {
            "errors": [
                {
                    "message": "PersistedQueryNotFound",
                    "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
                }
            ]
        }
    # when: a text that does not match its hash
    wrong = await both(
        servers, admin_key, "POST", json={"query": VERSION, "extensions": apq(hash_)}
    )
    assert wrong.status_code == 400
    assert codes(wrong) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    # when: the text with its hash, to one server only
    async with httpx.AsyncClient(base_url=servers[1].url) as http:
        registered = await http.post(
            "/graphql",
            json={"query": document, "extensions": apq(hash_)},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
    assert registered.json()["data"] == {"contacts": {"totalCount": 1 - 1}}
    # then: stored in Redis for a day, and known to the other server too, over POST and GET
    redis = Redis.from_url(settings.redis_url or "")
    try:
        assert await redis.get(f"apq:{hash_}") == document.encode()
        assert 0 < await redis.ttl(f"apq:{hash_}") <= 24 * 3600
    finally:
        await redis.aclose()
    by_hash = await both(servers, admin_key, "POST", json={"extensions": apq(hash_)})
    by_get = await both(
        servers, admin_key, "GET", params={"extensions": orjson.dumps(apq(hash_)).decode()}
    )
    assert by_hash.json() == by_get.json() == registered.json()


async def test_a_document_that_does_not_validate_is_not_remembered(
    servers: tuple[Server, Server], admin_key: str
) -> None:
    document = "{ nothing }"
    hash_ = sha256(document)
    first = await both(
        servers, admin_key, "POST", json={"query": document, "extensions": apq(hash_)}
    )
    assert codes(first) == ["VALIDATION_FAILED"]
    again = await both(servers, admin_key, "POST", json={"extensions": apq(hash_)})
    assert codes(again) == ["PERSISTED_QUERY_NOT_FOUND"]


# -- Trusted documents -------------------------------------------------------------------------

TRUSTED = "query Trusted { version }"
RELAY_ID = hashlib.md5(CONTACTS.encode()).hexdigest()  # Relay's compiler names them by MD5


@pytest.fixture(scope="module")
def trusted_servers(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, Server]]:
    """Both paths running only the documents of a manifest, as graphql-codegen and Relay
    write it: {id: document}."""
    manifest: Path = tmp_path_factory.mktemp("trusted") / "persisted-documents.json"
    manifest.write_bytes(orjson.dumps({sha256(TRUSTED): TRUSTED, RELAY_ID: CONTACTS}))
    update = {
        "rate_limit_requests": 0,
        "trusted_documents": str(manifest),
        "trusted_documents_only": True,
    }
    shared = settings.model_copy(update=update)
    with (
        serve(shared.model_copy(update={"fast_execution": True})) as planned,
        serve(shared.model_copy(update={"fast_execution": False})) as standard,
    ):
        yield planned, standard


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"documentId": f"sha256:{sha256(TRUSTED)}"}, id="documentId"),
        pytest.param({"documentId": sha256(TRUSTED)}, id="codegen's bare hash"),
        pytest.param({"extensions": apq(sha256(TRUSTED))}, id="Apollo's hash"),
        pytest.param({"query": TRUSTED}, id="its text"),
    ],
)
async def test_a_trusted_document_runs(
    trusted_servers: tuple[Server, Server], admin_key: str, payload: dict[str, Any]
) -> None:
    response = await both(trusted_servers, admin_key, "POST", json=payload)
    assert response.status_code == 200
    assert list(response.json()["data"]) == ["version"]


async def test_relay_names_a_trusted_document_by_doc_id(
    trusted_servers: tuple[Server, Server], admin_key: str
) -> None:
    response = await both(
        trusted_servers, admin_key, "POST", json={"doc_id": RELAY_ID, "variables": {"first": 1}}
    )
    assert response.json()["data"] == {"contacts": {"totalCount": 0}}


@pytest.mark.parametrize(
    ("payload", "code", "status"),
    [
        pytest.param({"query": VERSION}, "PERSISTED_QUERY_NOT_ALLOWED", 403, id="any other text"),
        pytest.param(
            {"query": VERSION, "extensions": apq(sha256(VERSION))},
            "PERSISTED_QUERY_NOT_ALLOWED",
            403,
            id="registering",
        ),
        pytest.param(
            {"documentId": "sha256:" + "0" * 64}, "PERSISTED_QUERY_NOT_FOUND", 404, id="unknown id"
        ),
    ],
)
async def test_only_trusted_documents_run(
    trusted_servers: tuple[Server, Server],
    admin_key: str,
    payload: dict[str, Any],
    code: str,
    status: int,
) -> None:
    for accept, expected in ((APOLLO, status), (None, 200)):
        headers = {} if accept is None else {"Accept": accept}
        response = await both(trusted_servers, admin_key, "POST", json=payload, headers=headers)
        assert response.status_code == expected
        assert list(response.json()) == ["errors"]
        assert codes(response) == [code]


async def test_only_trusted_documents_run_over_websocket_too(
    trusted_servers: tuple[Server, Server], admin_key: str
) -> None:
    # given
    subscription = 'subscription { campaignProgress(id: "1") { status } }'
    async with gql_socket(trusted_servers[1].url) as socket:
        assert (await socket.init(admin_key))["type"] == "connection_ack"
        # when: a document that is not in the manifest
        await socket.subscribe("1", subscription)
        messages = [message async for message in socket.events("1")]
    # then
    assert [m["type"] for m in messages] == ["error"]
    assert messages[0]["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_ALLOWED"
