"""Fuzzing the live app over HTTP with Hypothesis: documents built from the schema itself
(every root query and mutation, random selections, arguments of the right and wrong
types, as literals or variables) and raw garbage. Bounded: a few hundred requests.

Every answer must be a clean one: no HTTP 500, no stack trace, every error either a
client error with a known code or masked with an id, and no request past the timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    Undefined,
    get_named_type,
)
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from app.compat import graphql_schema
from app.config import Env, LogFormat, Settings
from schema.schema import schema
from tests.conftest import Server, serve

pytestmark = pytest.mark.asyncio

TIMEOUT_S = 2.0
CLIENT_CODES = {
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "VALIDATION_FAILED",
    "PARSE_FAILED",
    "QUERY_TOO_LARGE",
    "QUERY_TOO_DEEP",
    "TOO_MANY_ALIASES",
    "TOO_MANY_REPEATS",
    "QUERY_TOO_COMPLEX",
    "TIMEOUT",
}
GQL = graphql_schema(schema)
# Strings a client may send: any Unicode text (NUL included), plus values that look valid.
TEXTS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["+33612345678", "0612345678", "", "FR", "aWQ6MQ==", "1", "-1", "9" * 30]),
)


# Ids that `str.isdigit()`/`int()` let through but a key must not be: sent deterministically to
# every root field that takes an id (see `id_probes`), and also mixed into the random ones.
NOT_KEYS = ["²", "١٢", "\uff11\uff12", "+1", " 1", "1_000", "1\n", "9" * 19]


def _string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid GraphQL string literal


def literal(type_: GraphQLInputType, depth: int = 0) -> st.SearchStrategy[str]:
    """A GraphQL literal for `type_`, sometimes of the wrong type."""
    wrong = st.sampled_from(["null", "1", '"x"', "true", "[1]", "{a: 1}", "99999999999"])
    if isinstance(type_, GraphQLNonNull):
        return literal(type_.of_type, depth)
    if isinstance(type_, GraphQLList):
        items = st.lists(literal(type_.of_type, depth + 1), max_size=3)
        return st.one_of(items.map(lambda xs: "[" + ", ".join(xs) + "]"), wrong)
    if isinstance(type_, GraphQLEnumType):
        return st.one_of(st.sampled_from(list(type_.values)), st.just("NOT_A_VALUE"), wrong)
    if isinstance(type_, GraphQLInputObjectType):
        if depth > 2:
            return st.just("{}")
        fields = list(type_.fields.items())
        pairs = [st.tuples(st.just(name), literal(field.type, depth + 1)) for name, field in fields]
        picked = st.lists(st.one_of(*pairs), max_size=len(fields), unique_by=lambda p: p[0])
        return st.one_of(
            picked.map(lambda ps: "{" + ", ".join(f"{k}: {v}" for k, v in ps) + "}"), wrong
        )
    assert isinstance(type_, GraphQLScalarType)
    by_scalar: dict[str, st.SearchStrategy[str]] = {
        "Int": st.integers(-(2**40), 2**40).map(str),
        "Float": st.floats(allow_nan=False, allow_infinity=False).map(repr),
        "Boolean": st.sampled_from(["true", "false"]),
        "String": TEXTS.map(_string),
        "ID": st.one_of(
            st.integers(-5, 2**70).map(lambda i: _string(str(i))),
            st.sampled_from(NOT_KEYS).map(_string),
            TEXTS.map(_string),
        ),
        "DateTime": st.one_of(st.just(_string("2026-01-01T10:00:00+00:00")), TEXTS.map(_string)),
        "JSON": st.one_of(st.just('{name: "x"}'), st.just("[1, 2]"), TEXTS.map(_string)),
    }
    return st.one_of(by_scalar.get(type_.name, TEXTS.map(_string)), wrong)


def arguments(field: GraphQLField) -> st.SearchStrategy[str]:
    required = [n for n, a in field.args.items() if isinstance(a.type, GraphQLNonNull)]
    optional = [n for n in field.args if n not in required]
    names = (
        st.lists(st.sampled_from(optional), unique=True, max_size=len(optional))
        if optional
        else st.just([])
    )

    def render(chosen: list[str]) -> st.SearchStrategy[str]:
        all_names = required + chosen
        if not all_names:
            return st.just("")
        values = [literal(field.args[n].type) for n in all_names]
        return st.tuples(*values).map(
            lambda vs: (
                "(" + ", ".join(f"{n}: {v}" for n, v in zip(all_names, vs, strict=True)) + ")"
            )
        )

    return names.flatmap(render)


def selection(type_: Any, depth: int) -> st.SearchStrategy[str]:
    named = get_named_type(type_)
    if isinstance(named, GraphQLScalarType | GraphQLEnumType):
        return st.just("")
    if isinstance(named, GraphQLUnionType):

        def fragment(member: GraphQLObjectType) -> st.SearchStrategy[str]:
            return selection(member, depth).map(lambda s: f"... on {member.name} {s}")

        members = [fragment(member) for member in named.types]
        return st.lists(st.one_of(*members), min_size=1, max_size=3).map(
            lambda parts: "{ __typename " + " ".join(parts) + " }"
        )
    assert isinstance(named, GraphQLObjectType | GraphQLInterfaceType)
    fields = list(named.fields.items())
    if depth <= 0:
        leaves = [
            n
            for n, f in fields
            if isinstance(get_named_type(f.type), GraphQLScalarType | GraphQLEnumType)
            and not f.args
        ]
        return st.just("{ " + (" ".join(leaves[:3]) or "__typename") + " }")

    def one(item: tuple[str, GraphQLField]) -> st.SearchStrategy[str]:
        name, field = item
        alias = st.one_of(st.just(""), st.sampled_from(["a: ", "b: "]))
        return st.tuples(alias, arguments(field), selection(field.type, depth - 1)).map(
            lambda parts: f"{parts[0]}{name}{parts[1]} {parts[2]}"
        )

    return st.lists(st.sampled_from(fields).flatmap(one), min_size=1, max_size=4).map(
        lambda parts: "{ " + " ".join(parts) + " }"
    )


def document(root: GraphQLObjectType, keyword: str) -> st.SearchStrategy[str]:
    return st.integers(1, 4).flatmap(lambda d: selection(root, d)).map(lambda s: f"{keyword} {s}")


PLAIN = {
    "Int": "1",
    "Float": "1.0",
    "Boolean": "true",
    "String": '"x"',
    "DateTime": '"2030-01-01T10:00:00+00:00"',
    "JSON": "{}",
}


def _plain(type_: GraphQLInputType, id_literal: str, depth: int = 0) -> tuple[str, bool]:
    """A valid literal of `type_` with `id_literal` at every ID, and whether it holds one.

    Input objects get their required fields and those that reach an ID, nothing else."""
    if isinstance(type_, GraphQLNonNull):
        return _plain(type_.of_type, id_literal, depth)
    if isinstance(type_, GraphQLList):
        inner, has_id = _plain(type_.of_type, id_literal, depth)
        return f"[{inner}]", has_id
    if isinstance(type_, GraphQLInputObjectType):
        parts, any_id = [], False
        for name, field in type_.fields.items():
            value, has_id = _plain(field.type, id_literal, depth + 1) if depth < 3 else ("", False)
            if has_id or (
                isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
            ):
                parts.append(f"{name}: {value}")
                any_id = any_id or has_id
        return "{" + ", ".join(parts) + "}", any_id
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values)), False
    assert isinstance(type_, GraphQLScalarType)
    if type_.name == "ID":
        return id_literal, True
    return PLAIN[type_.name], False


def id_probes() -> list[tuple[str, str]]:
    """(document, id): each root field that takes an ID somewhere, with each non-key id in
    every ID position and plain values for the other required arguments."""
    probes = []
    for keyword, root in (("query", GQL.query_type), ("mutation", GQL.mutation_type)):
        assert root is not None
        for name, field in root.fields.items():
            named = get_named_type(field.type)
            tail = (
                "" if isinstance(named, GraphQLScalarType | GraphQLEnumType) else " { __typename }"
            )
            for value in NOT_KEYS:
                rendered = {n: _plain(a.type, _string(value)) for n, a in field.args.items()}
                if not any(has_id for _, has_id in rendered.values()):
                    continue
                args = ", ".join(
                    f"{n}: {lit}"
                    for n, (lit, has_id) in rendered.items()
                    if has_id or isinstance(field.args[n].type, GraphQLNonNull)
                )
                probes.append((f"{keyword} {{ {name}({args}){tail} }}", value))
    return probes


assert GQL.query_type is not None
assert GQL.mutation_type is not None
QUERIES = document(GQL.query_type, "query")
MUTATIONS = document(GQL.mutation_type, "mutation")
# A first page size arriving as a variable, of any type (the cost analysis reads it).
VARIABLE_PAGES = st.tuples(
    st.one_of(
        st.integers(-(2**40), 2**40),
        st.text(max_size=5),
        st.none(),
        st.lists(st.integers(), max_size=2),
    ),
    st.sampled_from(["contacts", "categories", "campaigns", "messages"]),
).map(
    lambda t: (
        f"query($n: Int) {{ {t[1]}(first: $n) {{ totalCount nodes {{ id }} }} }}",
        {"n": t[0]},
    )
)
GARBAGE = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.sampled_from(
            [
                "{",
                "}",
                "(",
                ")",
                "query",
                "mutation",
                "...",
                "on",
                "contacts",
                ":",
                "$x",
                "@skip",
                '"',
                "#",
            ]
        ),
        max_size=60,
    ).map(" ".join),
)


@pytest.fixture
def fuzz_server(settings: Settings) -> Iterator[Server]:
    update = {
        "env": Env.PROD,  # masking on, introspection off: what the internet would meet
        "log_format": LogFormat.TEXT,
        "query_timeout_s": TIMEOUT_S,
        "rate_limit_requests": 0,
    }
    with serve(settings.model_copy(update=update)) as running:
        yield running


class Findings:
    def __init__(self) -> None:
        self.internal: list[tuple[str, Any]] = []
        self.requests = 0
        self.slowest = 0.0
        self.id_probes = 0


def check(response: httpx.Response, elapsed: float, sent: str, findings: Findings) -> None:
    findings.requests += 1
    findings.slowest = max(findings.slowest, elapsed)
    assert response.status_code in (200, 400, 413), (response.status_code, sent, response.text)
    # no request outlives the server's timeout by much: generous (a loaded machine adds
    # seconds), yet under the client's own timeout, which a hung request would hit instead
    assert elapsed < TIMEOUT_S + 4.0, (elapsed, sent)
    assert "Traceback" not in response.text, sent
    assert 'File "' not in response.text, sent
    if response.status_code != 200:
        return
    body = response.json()
    assert set(body) <= {"data", "errors", "extensions"}, body
    for error in body.get("errors") or []:
        code = error.get("extensions", {}).get("code")
        if code == "INTERNAL_SERVER_ERROR":
            assert error["message"] == "Internal server error", error
            assert len(error["extensions"]["errorId"]) == 16
            findings.internal.append((sent, error))
        else:
            assert code in CLIENT_CODES, (sent, error)


def run_fuzz(url: str, key: str, findings: Findings) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT_S + 5) as http:

        def send(payload: Any, sent: str) -> None:
            started = time.perf_counter()
            response = http.post("/graphql", json=payload)
            check(response, time.perf_counter() - started, sent, findings)

        @hypothesis_settings(
            max_examples=250,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(st.one_of(QUERIES, MUTATIONS))
        def documents(query: str) -> None:
            send({"query": query}, query)

        @hypothesis_settings(max_examples=80, deadline=None, database=None)
        @given(VARIABLE_PAGES)
        def variables(case: tuple[str, dict[str, Any]]) -> None:
            send({"query": case[0], "variables": case[1]}, repr(case))

        @hypothesis_settings(max_examples=80, deadline=None, database=None)
        @given(GARBAGE, st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.integers())))
        def garbage(query: str, variables: dict[str, int] | None) -> None:
            send({"query": query, "variables": variables}, query)

        for document, value in id_probes():
            response = http.post("/graphql", json={"query": document})
            check(response, 0.0, document, findings)
            errors = response.json().get("errors") or []
            codes = [e.get("extensions", {}).get("code") for e in errors]
            # an id naming nothing is null to node and nodes (Relay's convention)
            lookup = document.startswith(("query { node(", "query { nodes("))
            assert codes == ([] if lookup else ["BAD_USER_INPUT"]), (document, value, errors)
            findings.id_probes += 1
        documents()
        variables()
        garbage()


async def test_fuzzed_requests_get_clean_answers(fuzz_server: Server, admin_key: str) -> None:
    # given
    findings = Findings()
    # when: blocking Hypothesis runs in a thread; the server has its own loop
    await asyncio.to_thread(run_fuzz, fuzz_server.url, admin_key, findings)
    # then
    assert findings.id_probes == len(id_probes()) > 0
    assert findings.requests >= 400
    assert findings.internal == [], findings.internal[:3]
