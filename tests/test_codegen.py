"""Generated code reads like written code: plans and row builders are compiled under a
filename naming what they are, their functions are named after the operation and the field
path, a traceback through them shows their lines, and `herald plan` prints a plan."""

from __future__ import annotations

import gc
import linecache
import logging
import traceback

import pytest
from graphql import GraphQLError, parse

from app.cli import main
from app.codegen import define, source_of
from app.compat import graphql_schema
from loaders.base import projected
from schema.common.ids import encoder
from schema.execution.executor import PlannedExecutor
from schema.execution.plans import DocumentPlans, execute
from tests.test_execution import PLANNED, ROOT_VALUE

# A leaf whose count (2**40) the Int scalar refuses, inside a list of a nullable object.
BROKEN = "query Broken { brokenScalars { leaves { count } } }"
CAMPAIGN_PAGE = """query CampaignPage { campaigns(first: 10) { nodes { id name
    messages(first: 100) { nodes { id status contact { id phone name } } } } } }"""


class Row:
    """A type a builder makes objects of."""

    node_id = encoder("Row")


class Joined:
    """The type of a row's joined columns."""

    node_id = encoder("Joined")


def _generated(error: BaseException) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(error.__traceback__) if f.filename.startswith("<")]


@pytest.mark.asyncio
async def test_a_failing_plan_shows_its_operation_field_path_and_lines() -> None:
    # given
    compiled = DocumentPlans(PLANNED).get(BROKEN, None, parse(BROKEN))
    assert compiled is not None
    executor = PlannedExecutor.build(graphql_schema(PLANNED), compiled.document, ROOT_VALUE)
    assert not isinstance(executor, list)
    plan = compiled.plan(executor)
    assert plan is not None
    # when
    with pytest.raises(GraphQLError, match="Int cannot represent") as caught:
        await execute(plan, executor)
    # then
    frames = _generated(caught.value)
    assert {frame.filename for frame in frames} == {"<herald plan: Broken>"}
    assert [frame.name for frame in frames][:2] == [
        "plan_Broken",
        "list_Broken__brokenScalars_leaves",
    ]
    assert frames[0].line == "data['brokenScalars'] = " + (
        "(None if value is None else {'leaves': list_Broken__brokenScalars_leaves(value.leaves)})"
    )
    assert frames[0].line == linecache.getline(frames[0].filename, frames[0].lineno or 0).strip()
    assert "list_Broken__brokenScalars_leaves(value.leaves)" in "".join(
        traceback.format_exception(caught.value)
    )


def test_a_failing_row_builder_shows_its_type_columns_and_lines() -> None:
    # given
    build = projected(("id", "name"), Row)
    # when
    with pytest.raises(IndexError) as caught:
        build([(1,)])  # a row without its name column
    # then
    (frame,) = _generated(caught.value)
    assert frame.filename == "<herald row builder: Row(id, name)>"
    assert frame.name == "build_Row"
    assert frame.line == (
        "item.__dict__ = {'id': (ids_Row.get(row[0]) or new_id_Row(row[0])), "
        "'database_id': row[0], 'name': row[1]}"
    )


def test_a_nested_row_builder_names_both_types() -> None:
    # given
    fields = ("owner_id", "status", "id", "contact__phone", "contact__id")
    # when
    build = projected(fields, Row, nested=("contact__", "contact", Joined))
    # then
    title = "Row(status, id, contact__phone, contact__id)"
    assert build.__code__.co_filename == f"<herald row builder: {title}>"
    source = source_of(build)
    assert source.splitlines()[0] == "def build_Row(rows):"
    assert "contact = new(Joined)" in source
    assert (
        "contact.__dict__ = {'phone': row[3], "
        "'id': (ids_Joined.get(row[4]) or new_id_Joined(row[4])), 'database_id': row[4]}"
    ) in source
    assert (
        "'status': status[row[1]], 'id': (ids_Row.get(row[2]) or new_id_Row(row[2])), "
        "'database_id': row[2], 'contact': contact}"
    ) in source


def test_generated_lines_live_as_long_as_their_functions(caplog: pytest.LogCaptureFixture) -> None:
    # given
    source = "def answer():\n    return 42\n"
    # when
    with caplog.at_level(logging.DEBUG, logger="herald.codegen"):
        first = define("test", "answer", source, {}, "answer")
        second = define("test", "answer", source, {}, "answer")
    # then: each its own filename, logged with its source at DEBUG
    names = [first.__code__.co_filename, second.__code__.co_filename]
    assert names == ["<herald test: answer>", "<herald test: answer #2>"]
    assert [r.getMessage() for r in caplog.records] == [f"compiled {n}:\n{source}" for n in names]
    assert source_of(second) == source
    del first, second
    gc.collect()
    assert not any(name in linecache.cache for name in names)


def test_herald_plan_prints_source_that_compiles(capsys: pytest.CaptureFixture[str]) -> None:
    # when
    code = main(["plan", CAMPAIGN_PAGE])
    # then
    printed = capsys.readouterr().out
    assert code == 0
    compile(printed, "<printed>", "exec")
    defined = [line.split("(")[0] for line in printed.splitlines() if line.startswith("def ")]
    assert defined == [
        "def list_CampaignPage__campaigns_nodes_messages_nodes",
        "def complete_CampaignPage__campaigns_nodes_messages",
        "def plan_CampaignPage__campaigns_nodes",
        "def list_CampaignPage__campaigns_nodes",
        "def plan_CampaignPage__campaigns",
        "def complete_CampaignPage__campaigns",
        "def plan_CampaignPage",
    ]


def test_herald_plan_says_why_a_document_has_no_plan(capsys: pytest.CaptureFixture[str]) -> None:
    # when
    with pytest.raises(SystemExit) as exited:
        main(["plan", "mutation { deleteContact(id: 1) { __typename } }"])
    # then
    assert exited.value.code == 1
    assert capsys.readouterr().err.startswith("herald: not a query")
