"""Operation plans: they answer exactly what the standard path answers, or hand over.

A plan may only answer a request when the standard path answers it without errors, and
then with JSON-equal data; everything else must leave the plan (and be answered by the
standard path). The misbehaving schema of tests/test_execution.py and its generated
documents check that, plan against standard path, without HTTP. Over HTTP, the real app
must answer the queries frontends send from their plans (`herald_planned_queries`), and a
request handed over must not be rate-limited or timed out twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from graphql import GraphQLError
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from app.compat import graphql_schema
from app.config import Settings
from schema.common.enums import WhatsAppStatus
from schema.execution.executor import PlannedExecutor
from schema.execution.fields import STRAWBERRY_FIELD
from schema.execution.pipeline import parse_document, validation_errors
from schema.execution.plans import DocumentPlan, DocumentPlans, execute, query_operation
from schema.execution.plans.calls import arguments_converter
from schema.schema import build_schema
from tests.conftest import GqlClient, Server, serve
from tests.test_execution import (
    NODE_FIELDS,
    PLANNED,
    ROOT_VALUE,
    ROOTS,
    STANDARD,
    TOY_DOCUMENTS,
    _json,
)

pytestmark = pytest.mark.asyncio

PLANS = DocumentPlans(PLANNED)


def _compiled(document: str, name: str | None = None) -> DocumentPlan | None:
    """The document's plans, once the steps before them let it through as on the planned
    path (parse, a query operation, validation with introspection off); None otherwise."""
    try:
        parsed = parse_document(document, 10_000)
    except GraphQLError:
        return None
    if query_operation(parsed.document, name) is None:
        return None
    if validation_errors(parsed, graphql_schema(PLANNED), introspection=False):
        return None
    return PLANS.get(document, name, parsed.document)


async def _plan_and_standard(
    document: str, variables: dict[str, Any] | None = None
) -> tuple[Any, tuple[Any, Any]]:
    """The plan's data (None when it hands over) and the standard path's data and errors."""
    standard = _json(
        await STANDARD.execute(document, variable_values=variables, root_value=ROOT_VALUE)
    )
    compiled = _compiled(document)
    if compiled is None:
        return None, standard
    executor = PlannedExecutor.build(
        graphql_schema(PLANNED), compiled.document, ROOT_VALUE, None, variables, None
    )
    assert not isinstance(executor, list)
    plan = compiled.plan(executor)
    if plan is None:
        return None, standard
    try:
        return await execute(plan, executor), standard
    except Exception:  # Bail, or a resolver's own error: the standard path answers
        return None, standard


def _check(planned: Any, standard: tuple[Any, Any], document: str) -> None:
    """Where the standard path answers without errors the plan answers the same; where it
    reports errors, the plan hands over."""
    data, errors = standard
    if errors is None:
        assert planned == data, document
    else:
        assert planned is None, f"the plan answered where the standard path fails: {document}"


@pytest.mark.parametrize("root", ROOTS)
async def test_a_plan_answers_only_what_the_standard_path_answers_alike(root: str) -> None:
    # given
    document = f"{{ {root} {{ {NODE_FIELDS} }} }}"
    # when
    planned, standard = await _plan_and_standard(document)
    # then
    _check(planned, standard, document)


async def test_plans_match_on_generated_documents() -> None:
    # given: 150 documents drawn by Hypothesis (drawn first, then run on this test's loop)
    cases: list[tuple[str, bool]] = []

    @hypothesis_settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(TOY_DOCUMENTS)
    def collect(case: tuple[str, bool]) -> None:
        cases.append(case)

    collect()
    for selection, flag in cases:
        document = f"query ($v: Boolean!) {selection}"
        # when
        planned, standard = await _plan_and_standard(document, {"v": flag})
        # then
        _check(planned, standard, document)


async def test_directive_values_get_plans_of_their_own() -> None:
    # given
    document = "query ($v: Boolean!) { good { id leaf @include(if: $v) { name } } }"
    # when
    with_leaf, _ = await _plan_and_standard(document, {"v": True})
    without, _ = await _plan_and_standard(document, {"v": False})
    # then
    assert with_leaf["good"][0] == {"id": "1", "leaf": {"name": "x"}}
    assert without["good"][0] == {"id": "1"}


async def test_unsupported_documents_are_not_compiled() -> None:
    assert _compiled("{ __schema { queryType { name } } }") is None
    assert _compiled("{ good { id") is None  # does not parse
    assert _compiled("{ nope }") is None  # does not validate
    assert _compiled("query A { good { id } } query B { good { id } }") is None
    assert _compiled("query A { good { id } } query B { good { id } }", "B") is not None


# -- Over HTTP --------------------------------------------------------------------------------

PAGE = """{ campaigns(first: 5) { nodes { id name messages(first: 10) {
  nodes { id status contact { id phone name } } } } } }"""
BAD_ID = '{ contact(id: "abc") { id } }'


async def _planned(http: httpx.AsyncClient) -> dict[str, float]:
    text = (await http.get("/metrics")).text
    found = {"answered": 0.0, "handed_over": 0.0}
    for line in text.splitlines():
        if line.startswith("herald_planned_queries_total{"):
            outcome = line.split('outcome="')[1].split('"')[0]
            found[outcome] = float(line.rsplit(" ", 1)[1])
    return found


async def test_queries_are_answered_by_their_plan_and_the_rest_handed_over(
    http: httpx.AsyncClient, gql: GqlClient
) -> None:
    # given
    before = await _planned(http)
    # when: two planned queries, then a query failing on its input and a mutation
    assert (await gql(PAGE)).errors is None
    assert (await gql("{ dashboard { contactCount } }")).errors is None
    failed = await gql(BAD_ID)
    created = await gql('mutation { createCategory(input: {name: "x"}) { __typename } }')
    # then: the failures and the mutation came from the standard path, answered as before
    after = await _planned(http)
    assert after["answered"] - before["answered"] == 2
    assert after["handed_over"] - before["handed_over"] == 2
    assert [e["extensions"]["code"] for e in failed.errors or []] == ["BAD_USER_INPUT"]
    assert created.errors is None


@pytest.fixture
def limited_server(settings: Settings) -> Iterator[Server]:
    update = {"rate_limit_requests": 3, "rate_limit_window_s": 30.0}
    with serve(settings.model_copy(update=update)) as running:
        yield running


async def test_a_request_handed_over_counts_once_against_the_rate_limit(
    limited_server: Server, admin_key: str
) -> None:
    async with httpx.AsyncClient(base_url=limited_server.url) as http:
        gql = GqlClient(http, admin_key)
        # when: three requests the plan hands over (each fails on its input)
        codes = [(await gql(BAD_ID)).errors for _ in range(3)]
        # then: all three were answered, and the window is full only now
        assert [c[0]["extensions"]["code"] for c in codes if c] == ["BAD_USER_INPUT"] * 3
        response = await http.post("/graphql", json={"query": PAGE}, headers=gql.auth_headers)
        assert response.status_code == 429


@pytest.fixture
def instant_timeout_server(settings: Settings) -> Iterator[Server]:
    with serve(settings.model_copy(update={"query_timeout_s": 1e-6})) as running:
        yield running


async def test_a_query_out_of_time_is_refused_once(
    instant_timeout_server: Server, admin_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient(base_url=instant_timeout_server.url) as http:
        gql = GqlClient(http, admin_key)
        # when
        with caplog.at_level(logging.WARNING):
            result = await gql(PAGE)
        # then: the standard path's answer, and one operation stopped, not two
        assert result.data is None
        assert [e["extensions"]["code"] for e in result.errors or []] == ["TIMEOUT"]
        stopped = [r for r in caplog.records if "stopped after" in r.getMessage()]
        assert len(stopped) == 1


async def test_argument_conversions_are_shared_only_when_nothing_in_them_can_change() -> None:
    # given Herald's fields: a page's arguments (scalars, enums) and a mutation's input
    herald = build_schema()
    fields = graphql_schema(herald).query_type.fields  # type: ignore[union-attr]
    mutations = graphql_schema(herald).mutation_type.fields  # type: ignore[union-attr]
    contacts = arguments_converter(fields["contacts"].extensions[STRAWBERRY_FIELD], herald)
    create = arguments_converter(mutations["createCampaign"].extensions[STRAWBERRY_FIELD], herald)
    page = {"first": 5, "search": None, "whatsappStatus": "valid"}
    draft = {"input": {"name": "Sale", "template": {"name": "sale"}, "targetIds": []}}

    # when each is converted twice
    first, again = contacts(page, None), contacts(page, None)
    made, remade = create(draft, None), create(draft, None)

    # then equal values, never the same dict (a resolver may change its own), and input
    # objects built anew for each call
    assert first == again == {"first": 5, "search": None, "whatsapp_status": WhatsAppStatus.VALID}
    assert first is not again
    assert made["input"] == remade["input"]
    assert made["input"] is not remade["input"]
