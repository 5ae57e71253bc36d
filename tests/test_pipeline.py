"""One request pipeline for both paths: the planned path (schema/execution/endpoint.py) and
Strawberry's view
take the same steps in the same order (body size, media type, parameters, parse, rate limit,
shape limits, validation, execution), so they accept and refuse the same requests. Each test
sends the same request to a server with planned queries on and to one with them off."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import strawberry.schema.schema as strawberry_schema
from graphql import DocumentNode, GraphQLError, NameNode, Token
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.models import Contact
from schema.execution import pipeline
from schema.execution.pipeline import VARIABLES_MAX_DEPTH
from tests import factories
from tests.conftest import Server, create_api_key, serve

pytestmark = pytest.mark.asyncio

PROTECTED = "{ dashboard { contactCount } }"
VERSION = "{ version }"
# The same field 700 times: standard validation compares every pair of them (most of a second).
REPEATED = "{ contacts { " + "totalCount " * 700 + "} }"
SEARCH = "query($s: String) { contacts(search: $s) { totalCount } }"
SUBSCRIPTION = 'subscription { campaignProgress(id: "1") { status } }'
CREATE_CONTACT = """
mutation($attributes: JSON) {
  createContact(input: {phone: "+33612345678", attributes: $attributes}) { __typename }
}
"""


@pytest.fixture(scope="module")
def paths(settings: Settings) -> Iterator[tuple[Server, Server]]:
    """(planned path on, planned path off), without a rate limit."""
    update = {"rate_limit_requests": 0}
    planned = settings.model_copy(update={**update, "fast_execution": True})
    standard = settings.model_copy(update={**update, "fast_execution": False})
    with serve(planned) as on, serve(standard) as off:
        yield on, off


@pytest.fixture(scope="module")
def limited_paths(settings: Settings) -> Iterator[tuple[Server, Server]]:
    """(planned path on, planned path off), two requests per key (and per address, which a
    key's first request also counts against) every 30 s."""
    update = {"rate_limit_requests": 2, "rate_limit_window_s": 30.0}
    planned = settings.model_copy(update={**update, "fast_execution": True})
    standard = settings.model_copy(update={**update, "fast_execution": False})
    with serve(planned) as on, serve(standard) as off:
        yield on, off


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The documents validated from now on (graphql-core's `validate`, as Strawberry's
    `validate_document` calls it for every path)."""
    validated: list[str] = []
    validate = strawberry_schema.validate

    def counted(schema: Any, document: Any, *args: Any, **kwargs: Any) -> Any:
        validated.append(document.loc.source.body if document.loc else "")
        return validate(schema, document, *args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "validate", counted)
    return validated


def unseen(document: str) -> str:
    """The document under a text no cache has seen yet (a comment of its own)."""
    return f"# {uuid.uuid4().hex}\n{document}"


async def post(
    server: Server,
    key: str,
    body: bytes | AsyncIterator[bytes],
    content_type: str = "application/json",
) -> httpx.Response:
    headers = {**bearer(key), "Content-Type": content_type}
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        return await http.post("/graphql", content=body, headers=headers)


JSON_TYPE = {"Content-Type": "application/json"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def json_body(document: str, variables: dict[str, Any] | None = None) -> bytes:
    payload: dict[str, Any] = {"query": document}
    if variables is not None:
        payload["variables"] = variables
    return httpx.Request("POST", "/", json=payload).content


# -- Body size -------------------------------------------------------------------------------------


async def test_a_chunked_body_just_over_the_limit_is_413_on_both_paths(
    paths: tuple[Server, Server], admin_key: str, settings: Settings
) -> None:
    # given: a JSON body under the limit until its last chunk, which takes it 64 KB over
    head = b'{"query": "{ version }", "variables": {"pad": "'
    first = head + b"x" * (settings.request_max_bytes - len(head))
    last = b"x" * (64 * 1024) + b'"}}'

    async def chunks() -> AsyncIterator[bytes]:
        yield first
        await asyncio.sleep(0.2)  # the server reads the first part before the last arrives
        yield last

    # when
    responses = [await post(server, admin_key, chunks()) for server in paths]
    # then
    assert [r.status_code for r in responses] == [413, 413]
    assert all("content-length" not in r.request.headers for r in responses)


async def head_only_answer(server: Server, headers: str) -> tuple[int, dict[str, Any]]:
    """The answer to a POST /graphql whose request line and headers are sent, and no byte of
    its body."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"POST /graphql HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        length = int(re.search(rb"content-length: (\d+)", head, re.I)[1])  # type: ignore[index]
        return int(head.split()[1]), orjson.loads(await reader.readexactly(length))
    finally:
        writer.close()


@pytest.mark.parametrize(
    "authorization",
    ["", "Authorization: Bearer not-a-key\r\n", "Authorization: Basic dXNlcjpwYXNz\r\n"],
)
async def test_without_a_key_a_body_over_the_anonymous_limit_is_413_before_it_is_read(
    paths: tuple[Server, Server], settings: Settings, authorization: str
) -> None:
    # given: a declared length one byte over the limit of a request without a well-formed key
    declared = settings.request_max_bytes_anonymous + 1
    headers = f"{authorization}Content-Type: application/json\r\nContent-Length: {declared}\r\n"
    # when: no byte of the body is sent
    answers = [await head_only_answer(server, headers) for server in paths]
    # then: both paths refuse from the headers alone, and say how to send more
    for status, body in answers:
        assert status == 413
        assert body["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
        assert "without an API key" in body["errors"][0]["message"]


async def test_a_key_lifts_the_anonymous_body_limit_and_a_chunked_body_cannot_dodge_it(
    paths: tuple[Server, Server], admin_key: str, settings: Settings
) -> None:
    # given: a valid request a few bytes over the anonymous limit
    pad = "x" * settings.request_max_bytes_anonymous
    body = json_body(VERSION, {"pad": pad})

    async def chunked() -> AsyncIterator[bytes]:
        yield body

    for server in paths:
        # when: sent with a key, without one, and without one nor a Content-Length
        keyed = await post(server, admin_key, body)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            anonymous = await http.post("/graphql", content=body, headers=JSON_TYPE)
            streamed = await http.post("/graphql", content=chunked(), headers=JSON_TYPE)
        # then
        assert keyed.status_code == 200
        assert keyed.json()["data"]["version"]
        assert [anonymous.status_code, streamed.status_code] == [413, 413]
        assert "content-length" not in streamed.request.headers
        assert streamed.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"


async def test_without_a_key_a_query_string_over_the_anonymous_limit_is_414(
    paths: tuple[Server, Server], admin_key: str, settings: Settings
) -> None:
    # given: a query over GET a few bytes over the anonymous limit (a document fits in a
    # request's head, up to HTTP_MAX_HEAD_BYTES)
    params = {"query": VERSION + " " * settings.request_max_bytes_anonymous}
    for server in paths:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            # when: sent without a key, and with one
            anonymous = await http.get("/graphql", params=params)
            keyed = await http.get("/graphql", params=params, headers=bearer(admin_key))
        # then
        assert anonymous.status_code == 414
        assert anonymous.json()["errors"][0]["extensions"]["code"] == "URI_TOO_LONG"
        assert "without an API key" in anonymous.json()["errors"][0]["message"]
        assert keyed.status_code == 200
        assert keyed.json()["data"]["version"]


# -- Media type ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        # Strawberry's view compares the media type as it is sent
        ("APPLICATION/JSON", 415),
        ("text/plain; x=application/json", 415),
        ("multipart/form-data; boundary=application/json", 415),
    ],
)
async def test_both_paths_accept_the_same_media_types(
    paths: tuple[Server, Server], admin_key: str, content_type: str, status: int
) -> None:
    # when
    responses = [
        await post(server, admin_key, json_body(VERSION), content_type) for server in paths
    ]
    # then
    assert [r.status_code for r in responses] == [status, status]
    assert responses[0].content == responses[1].content


# -- Parameters ------------------------------------------------------------------------------------


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The JSON texts decoded by `orjson.loads` from now on, on any path."""
    decoded: list[bytes] = []
    loads = orjson.loads

    def counted(text: bytes | str) -> Any:
        decoded.append(text.encode() if isinstance(text, str) else bytes(text))
        return loads(text)

    monkeypatch.setattr(orjson, "loads", counted)
    return decoded


@pytest.fixture
def variables_walks(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The variables walked for their bounds (`variables_error`) from now on, on any path."""
    walked: list[object] = []
    excess = pipeline.json_excess

    def counted(value: object, *bounds: Any) -> Any:
        walked.append(value)
        return excess(value, *bounds)

    monkeypatch.setattr(pipeline, "json_excess", counted)
    return walked


async def test_a_handed_over_body_is_decoded_and_its_variables_walked_once(
    paths: tuple[Server, Server],
    admin_key: str,
    decodes: list[bytes],
    variables_walks: list[object],
) -> None:
    """A mutation: the planned path reads it, then hands it to the view, which reads nothing
    again; without the planned path the view reads it once itself."""
    for server, phone in zip(paths, ("+33612345678", "+33612345679"), strict=True):
        # given
        body = orjson.dumps(
            {"query": CREATE_CONTACT, "variables": {"attributes": {"city": "Lyon"}}}
        ).replace(b"+33612345678", phone.encode())
        decodes.clear()
        variables_walks.clear()

        # when
        response = await post(server, admin_key, body)

        # then
        assert response.json()["data"] == {"createContact": {"__typename": "CreateContactSuccess"}}
        assert decodes.count(body) == 1
        assert variables_walks == [{"attributes": {"city": "Lyon"}}]


async def test_a_body_that_does_not_decode_is_decoded_once_and_refused_alike(
    paths: tuple[Server, Server], admin_key: str, decodes: list[bytes]
) -> None:
    # given
    body = b'{"query": "{ version }", "variables": {'

    # when
    responses = []
    for server in paths:
        decodes.clear()
        responses.append(await post(server, admin_key, body))
        assert decodes.count(body) == 1

    # then
    assert [r.status_code for r in responses] == [400, 400]
    assert responses[0].content == responses[1].content
    assert responses[0].json()["errors"][0]["extensions"] == {"code": "BAD_REQUEST"}


# -- Parse, rate limit, shape limits, validation, in this order ------------------------------------


async def test_a_document_over_a_limit_is_refused_without_validation(
    paths: tuple[Server, Server], admin_key: str, validations: list[str]
) -> None:
    # given
    document = unseen(REPEATED)
    # when
    responses = [await post(server, admin_key, json_body(document)) for server in paths]
    # then: the same refusal from both paths, and neither validated the document
    for response in responses:
        assert response.status_code == 200
        errors = response.json()["errors"]
        assert len(errors) == 1
        assert errors[0]["extensions"] == {"code": "TOO_MANY_REPEATS"}
    assert responses[0].json() == responses[1].json()
    assert validations == []
    # while a document within the limits is validated (once: the cache is the process's)
    within = unseen(VERSION)
    for server in paths:
        assert (await post(server, admin_key, json_body(within))).status_code == 200
    assert validations == [within]


@pytest.fixture
def cyclic_garbage() -> Iterator[Callable[[str], list[object]]]:
    """`left(marker)`: the tokens and names of value `marker` that, since the fixture began,
    only the cyclic garbage collector could free (a collection of 100,000 such objects held
    the process for 130 ms)."""
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)

    def left(marker: str) -> list[object]:
        gc.collect()
        return [o for o in gc.garbage if isinstance(o, Token | NameNode) and o.value == marker]

    try:
        yield left
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


async def test_a_parse_leaves_nothing_to_the_cycle_collector(
    cyclic_garbage: Callable[[str], list[object]],
) -> None:
    # given: a document that parses, one cut short, one over the token limit
    marker = f"f{uuid.uuid4().hex}"
    parsed, cut = "{ " + f"{marker} " * 700 + "}", "{ " + f"{marker} " * 700 + "("
    over = "{ " + f"{marker} " * 2_000 + "}"
    # when: each is parsed, and the one that parsed is dropped
    pipeline.parse_document(parsed, 1_000)
    pipeline.forget_document(parsed, 1_000)
    for text in (cut, over):
        with pytest.raises(GraphQLError):
            pipeline.parse_document(text, 1_000)
    # then: reference counting freed every token and node (the lexer chains its tokens both
    # ways, and a syntax error's traceback holds the tree built so far)
    assert cyclic_garbage(marker) == []


async def test_a_refused_document_leaves_nothing_to_the_cycle_collector(
    paths: tuple[Server, Server], admin_key: str, cyclic_garbage: Callable[[str], list[object]]
) -> None:
    # given: a new document over the repeats limit, and one over the token limit
    marker = f"f{uuid.uuid4().hex}"
    documents = ["{ " + f"{marker} " * 300 + "}", "{ " + f"{marker} " * 2_000 + "}"]
    for server in paths:
        # when
        answers = [await post(server, admin_key, json_body(d)) for d in documents]
        # then: refused, and their trees went with their requests (a refusal's traceback
        # holds the request, and the frame that caught it holds the refusal)
        codes = [a.json()["errors"][0]["extensions"]["code"] for a in answers]
        assert codes == ["TOO_MANY_REPEATS", "QUERY_TOO_LARGE"]
    assert cyclic_garbage(marker) == []


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The documents parsed from now on, by the request pipeline's `parse_document`."""
    parsed: list[str] = []
    parse = pipeline.parse_unlinked

    def counted(source: str, max_tokens: int) -> DocumentNode:
        parsed.append(source)
        return parse(source, max_tokens)

    monkeypatch.setattr(pipeline, "parse_unlinked", counted)
    return parsed


async def test_a_large_document_is_parsed_with_short_thread_switches(
    parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a document too large to be parsed on the event loop
    document = unseen("{ version }" + " " * pipeline.PARSE_OFF_LOOP_CHARS)
    parse = pipeline.parse_unlinked
    intervals: list[float] = []

    def observed(source: str, max_tokens: int) -> DocumentNode:
        intervals.append(sys.getswitchinterval())
        return parse(source, max_tokens)

    monkeypatch.setattr(pipeline, "parse_unlinked", observed)
    before = sys.getswitchinterval()
    # when
    parsed = await pipeline.parse_request_document(document, 1_000)
    # then the loop got the interpreter back every 1 ms while the thread parsed, and the
    # process's own interval is back
    assert parsed.document.definitions
    assert parses == [document]
    assert intervals == [0.001]
    assert sys.getswitchinterval() == before


async def test_a_document_that_does_not_parse_is_parsed_once(
    paths: tuple[Server, Server], admin_key: str, parses: list[str]
) -> None:
    for server in paths:
        # given: a document over the token limit, and one cut short
        too_long = unseen("{ " + "version " * 2_000 + "}")
        cut = unseen("{ version")
        parses.clear()
        # when
        codes = [
            (await post(server, admin_key, json_body(document))).json()["errors"][0]
            for document in (too_long, cut)
        ]
        # then: each refused once parsed, by the planned path, or by the view alone
        assert [error["extensions"]["code"] for error in codes] == [
            "QUERY_TOO_LARGE",
            "PARSE_FAILED",
        ]
        assert parses == [too_long, cut]


async def test_only_documents_that_pass_stay_parsed(
    paths: tuple[Server, Server], admin_key: str, parses: list[str]
) -> None:
    """A parse tree is kept only for a document that passes the shape limits and validation:
    a flood of new refused documents would otherwise fill the cache with large trees, which
    every full garbage collection walks."""
    for server in paths:
        # given
        valid, too_big = unseen(VERSION), unseen("query($n: Int) " + REPEATED)
        invalid = unseen("{ noSuchField }")
        parses.clear()
        # when: each sent twice (the one over a shape limit with other variables)
        for document in (valid, valid, invalid, invalid):
            await post(server, admin_key, json_body(document))
        refusals = [
            (await post(server, admin_key, json_body(too_big, {"n": n}))).json() for n in (1, 2)
        ]
        # then: the valid document was parsed once, the invalid one every time, and the one
        # over a limit once: sent again, it gets the same refusal unparsed
        assert parses == [valid, invalid, invalid, too_big]
        assert refusals[0]["errors"][0]["extensions"] == {"code": "TOO_MANY_REPEATS"}
        assert refusals[0] == refusals[1]


async def test_a_document_refused_for_a_variables_value_stays_parsed(
    paths: tuple[Server, Server], admin_key: str, parses: list[str]
) -> None:
    """A search over its maximum length is the variable's fault, not the document's: the
    next search reuses the parse (and the validation kept with it). The same value written
    in the document's text makes the document leave, its refusal kept in its place."""
    for server in paths:
        # given
        search = unseen(SEARCH)
        literal = unseen('{ contacts(search: "%s") { totalCount } }' % ("x" * 101))
        parses.clear()
        # when
        refused = await post(server, admin_key, json_body(search, {"s": "x" * 101}))
        answered = await post(server, admin_key, json_body(search, {"s": "ada"}))
        literals = [(await post(server, admin_key, json_body(literal))).json() for _ in (1, 2)]
        # then
        assert refused.json()["errors"][0]["extensions"] == {
            "code": "BAD_USER_INPUT",
            "argument": "search",
        }
        assert answered.json()["data"] == {"contacts": {"totalCount": 0}}
        # and the literal's refusal, the document's own, is known when it comes again
        assert literals[0] == literals[1]
        assert literals[0]["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert parses == [search, literal]


async def test_a_cost_refusal_stands_only_for_the_values_it_was_given(
    paths: tuple[Server, Server], admin_key: str, parses: list[str]
) -> None:
    for server in paths:
        # given: a document whose declared default is too costly
        costly = unseen(
            "query($n: Int = 100) { messages(first: $n) { nodes { campaign { messages("
            "first: $n) { nodes { campaign { messages(first: $n) { nodes { id } } } } } } } } }"
        )
        parses.clear()
        # when: sent without variables, twice
        refused = await post(server, admin_key, json_body(costly))
        again = await post(server, admin_key, json_body(costly))
        # then: refused both times, parsed once
        assert refused.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert again.json() == refused.json()
        assert parses == [costly]
        # when: with too large a page, then a small one
        large = await post(server, admin_key, json_body(costly, {"n": 1_000}))
        small = await post(server, admin_key, json_body(costly, {"n": 1}))
        # then: the large one refused, the small one answered, from one more parse: a
        # refusal the values may lift keeps the document parsed
        assert large.json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"
        assert small.json() == {
            "data": {"messages": {"nodes": []}},
            "extensions": small.json()["extensions"],
        }
        assert parses == [costly, costly]


async def test_a_rate_limited_client_gets_the_same_answer_without_validation(
    limited_paths: tuple[Server, Server], settings: Settings, validations: list[str]
) -> None:
    # given: one key per server, each having used its window
    keys = [await create_api_key(settings, "admin") for _ in limited_paths]
    for server, key in zip(limited_paths, keys, strict=True):
        for _ in range(2):  # a protected field: the key is looked up, and known from then on
            ok = await post(server, key, json_body(PROTECTED))
            assert ok.status_code == 200
    validations.clear()
    document = unseen(REPEATED)
    # when
    responses = [
        await post(server, key, json_body(document))
        for server, key in zip(limited_paths, keys, strict=True)
    ]
    # then
    assert [r.status_code for r in responses] == [429, 429]
    assert [r.headers["Retry-After"] for r in responses] == ["30", "30"]
    assert responses[0].json() == responses[1].json()
    assert responses[0].json()["errors"][0]["extensions"] == {
        "code": "RATE_LIMITED",
        "retryAfter": 30,
    }
    assert validations == []


async def test_a_document_that_does_not_parse_is_refused_before_the_rate_limit(
    limited_paths: tuple[Server, Server], settings: Settings
) -> None:
    # given: one key per server, two operations a window
    keys = [await create_api_key(settings, "admin") for _ in limited_paths]
    for server, key in zip(limited_paths, keys, strict=True):
        # when: three documents that do not parse, then three that do
        broken = [await post(server, key, json_body("{ version")) for _ in range(3)]
        parsed = [await post(server, key, json_body(PROTECTED)) for _ in range(3)]
        # then: the broken ones cost no place in the window
        assert [r.json()["errors"][0]["extensions"]["code"] for r in broken] == ["PARSE_FAILED"] * 3
        assert [r.status_code for r in parsed] == [200, 200, 429]


# -- Variables -------------------------------------------------------------------------------------


def with_variable(document: str, name: str, value: bytes) -> bytes:
    """A JSON body whose variable `name` is the JSON text `value`, as sent."""
    head = httpx.Request("POST", "/", json={"query": document}).content[:-1]
    return head + b', "variables": {"' + name.encode() + b'": ' + value + b"}}"


def nested(levels: int) -> bytes:
    """A JSON object `levels` deep: {"a":{"a":...1}}."""
    return b'{"a":' * levels + b"1" + b"}" * levels


@pytest.mark.parametrize(
    ("document", "name", "keyed"),
    [
        pytest.param(VERSION, "v", False, id="undeclared, no key"),
        pytest.param(CREATE_CONTACT, "attributes", True, id="a mutation's input"),
    ],
)
async def test_variables_nested_600_deep_are_refused_the_same_on_both_paths(
    paths: tuple[Server, Server],
    admin_key: str,
    session: AsyncSession,
    caplog: pytest.LogCaptureFixture,
    document: str,
    name: str,
    keyed: bool,
) -> None:
    # given
    body = with_variable(document, name, nested(600))
    headers = {"Content-Type": "application/json"}
    if keyed:
        headers["Authorization"] = f"Bearer {admin_key}"
    responses = []

    # when
    with caplog.at_level(logging.WARNING):
        for server in paths:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                responses.append(await http.post("/graphql", content=body, headers=headers))

    # then: the client's mistake, named, from both paths; nothing ran, logged or written
    for response in responses:
        assert response.status_code == 200
        assert response.json() == {
            "errors": [
                {
                    "message": f"variables nest deeper than {VARIABLES_MAX_DEPTH} levels",
                    "extensions": {"code": "VARIABLES_TOO_DEEP"},
                }
            ],
            "extensions": {"sqlStatements": 0, "redisRoundTrips": 0},
        }
    assert [r.getMessage() for r in caplog.records] == []
    assert await factories.count(session, Contact) == 0


def lists(lengths: list[int]) -> bytes:
    """A list of lists of zeros, of these lengths."""
    return b"[" + b",".join(b"[" + b",".join([b"0"] * n) + b"]" for n in lengths) + b"]"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        pytest.param(nested(VARIABLES_MAX_DEPTH - 1), None, id="as deep as allowed"),
        pytest.param(nested(VARIABLES_MAX_DEPTH), "VARIABLES_TOO_DEEP", id="a level deeper"),
        # each list is a value of its own: 1 + 25 + 249,974
        pytest.param(lists(24 * [10_000] + [9_974]), None, id="as many values as allowed"),
        pytest.param(lists(24 * [10_000] + [9_975]), "VARIABLES_TOO_LARGE", id="a value more"),
        # twice an import's maximum rows (10,000 here)
        pytest.param(lists([20_000]), None, id="a list as long as allowed"),
        pytest.param(lists([20_001]), "VARIABLES_TOO_LARGE", id="an item more"),
    ],
)
async def test_variables_at_their_bounds_are_answered_and_past_them_refused_on_both_paths(
    paths: tuple[Server, Server], admin_key: str, value: bytes, code: str | None
) -> None:
    # given
    body = with_variable(VERSION, "v", value)

    # when
    responses = [await post(server, admin_key, body) for server in paths]

    # then
    assert responses[0].json() == responses[1].json()
    answer = responses[0].json()
    if code is None:
        assert list(answer) == ["data", "extensions"]
        assert list(answer["data"]) == ["version"]
    else:
        assert "data" not in answer
        assert [e["extensions"]["code"] for e in answer["errors"]] == [code]


# -- Subscriptions over HTTP -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "accept"),
    [
        ("POST", "application/json"),
        # a multipart answer, but not the subscription spec's (tests/test_subscriptions_http.py)
        ("POST", "multipart/mixed"),
        ("GET", "application/json"),
        ("GET", "multipart/mixed"),
    ],
)
async def test_a_subscription_over_http_is_refused_as_the_clients_mistake(
    paths: tuple[Server, Server],
    admin_key: str,
    method: str,
    accept: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given
    headers = {"Authorization": f"Bearer {admin_key}", "Accept": accept}
    responses = []
    # when
    with caplog.at_level(logging.WARNING):
        for server in paths:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                if method == "GET":
                    response = await http.get(
                        "/graphql", params={"query": SUBSCRIPTION}, headers=headers
                    )
                else:
                    response = await http.post(
                        "/graphql", json={"query": SUBSCRIPTION}, headers=headers
                    )
            responses.append(response)
    # then: a client error, the same from both paths, and nothing logged as a failure
    for response in responses:
        assert response.status_code == 400
        assert response.json() == {
            "errors": [
                {
                    "message": "a subscription needs a stream, and this request accepts JSON "
                    "only: subscribe on /graphql over WebSocket (graphql-transport-ws), over "
                    "Server-Sent Events (graphql-sse: Accept: text/event-stream) or as a "
                    'multipart response (Accept: multipart/mixed;subscriptionSpec="1.0")',
                    "extensions": {"code": "SUBSCRIPTION_OVER_HTTP"},
                }
            ],
            "extensions": {"sqlStatements": 0, "redisRoundTrips": 0},  # nothing ran
        }
    assert [r.getMessage() for r in caplog.records] == []
