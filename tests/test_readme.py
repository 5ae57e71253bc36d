"""The README's commands and configuration table stay in step with CI and Settings."""

from __future__ import annotations

import re
import tomllib
from enum import Enum
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from app.compat import graphql_schema
from app.config import Settings
from app.seed import SeedReport, seed
from app.seed.demo import DEMO_CAMPAIGNS, DEMO_CONTACTS, DEMO_MESSAGES_PER_CAMPAIGN
from app.whatsapp.errors import (
    ERRORS,
    HTTP_429,
    REFUSED,
    UNAVAILABLE,
    UNKNOWN,
    ErrorClass,
    Rule,
)
from schema.common.ids import global_id
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"


def _quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands() -> None:
    commands = _quick_start_commands()

    assert len(commands) == 2
    assert commands[0].endswith("herald dev")
    assert commands[1].endswith("pytest")


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()

    assert _quick_start_commands()[1] in ci_lines


def test_installs_come_from_the_lock() -> None:
    run, test = _quick_start_commands()
    install = (
        "python3 -m venv .venv && .venv/bin/pip install -q --require-hashes -r requirements-uv.txt"
        " && .venv/bin/uv sync -q --locked --inexact"
    )
    assert run.startswith(install + " && ")
    assert test.startswith(install + " --extra dev && ")
    # the uv that requirements-uv.txt installs is the one pyproject.toml requires
    pinned = re.findall(r"^uv==(\S+) ", (ROOT / "requirements-uv.txt").read_text(), re.MULTILINE)
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    assert [f"=={pinned[0]}"] == [required["required-version"]]


def test_env_example_lists_every_setting_with_its_default() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    listed = dict(re.findall(r"^# (HERALD_[A-Z0-9_]+)=(.*)$", "\n".join(lines), re.MULTILINE))

    def shown(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return str(value).lower()
        return str(value.value if isinstance(value, Enum) else value)

    assert listed == {
        f"HERALD_{name.upper()}": shown(field.default)
        for name, field in Settings.model_fields.items()
    }


def test_every_setting_is_documented() -> None:
    reference = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `(HERALD_[A-Z0-9_]+)` \|", reference, re.MULTILINE))

    assert documented == {f"HERALD_{name.upper()}" for name in Settings.model_fields}


def test_readme_graphql_examples_are_valid() -> None:
    """Every example document in the README validates against the current schema."""
    from graphql import parse, validate

    from schema.schema import schema

    blocks = re.findall(r"```graphql\n(.*?)```", README, flags=re.DOTALL)
    assert len(blocks) >= 4
    for block in blocks:
        errors = validate(graphql_schema(schema), parse(block))
        assert errors == [], (block, errors)


# --- every example runs against the demo data and finds something ---

README_VARIABLES: dict[str, dict[str, Any]] = {
    "Contacts": {"after": None},
    "Import": {
        "rows": [
            {"phone": "06 98 76 54 32", "name": "Inès"},
            {"phone": "not a phone", "name": "Typo"},
        ]
    },
}


def _operations() -> list[tuple[str, str]]:
    """(operation name, document) of every named query and mutation in the README's
    examples; subscriptions run over WebSocket (tests/test_live.py)."""
    from graphql import OperationDefinitionNode, OperationType, parse

    found = []
    for block in re.findall(r"```graphql\n(.*?)```", README, flags=re.DOTALL):
        for definition in parse(block).definitions:
            assert isinstance(definition, OperationDefinitionNode)
            assert definition.name is not None, block
            if definition.operation is not OperationType.SUBSCRIPTION:
                found.append((definition.name.value, block))
    return found


@pytest_asyncio.fixture
async def demo_data(settings: Settings) -> SeedReport:
    """What `herald dev` loads on its first start."""
    engine = create_async_engine(settings.async_database_url, poolclass=NullPool)
    try:
        return await seed(engine, DEMO_CONTACTS, DEMO_CAMPAIGNS, DEMO_MESSAGES_PER_CAMPAIGN)
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_readme_examples_find_something_in_the_demo_data(
    demo_data: SeedReport, http: httpx.AsyncClient, admin_key: str
) -> None:
    # given
    auth = {"Authorization": f"Bearer {admin_key}"}
    answers: dict[str, Any] = {}

    async def run(name: str, document: str, variables: dict[str, Any]) -> Any:
        payload = {"query": document, "operationName": name, "variables": variables}
        body = (await http.post("/graphql", json=payload, headers=auth)).json()
        assert "errors" not in body, (name, body)
        return body["data"]

    # when: each example runs, in the README's order (Launch targets a demo segment, Start
    # starts the campaign Launch created)
    for name, document in _operations():
        variables = dict(README_VARIABLES.get(name, {}))
        if name == "Refetch":
            variables["id"] = answers["CampaignsWithMessages"]["campaigns"]["nodes"][0]["id"]
        if name == "Launch":
            variables["segment"] = answers["Dashboard"]["categories"]["nodes"][0]["id"]
        if name == "Start":
            variables["id"] = answers["Launch"]["createCampaign"]["campaign"]["id"]
        answers[name] = await run(name, document, variables)

    # then: every example was run, and each found what it shows
    assert list(answers) == [
        "CampaignsWithMessages", "Contacts", "Dashboard", "Refetch",
        "CreateContact", "Import", "Launch", "Start",
    ]  # fmt: skip
    campaigns = answers["CampaignsWithMessages"]["campaigns"]
    assert campaigns["totalCount"] > 0
    assert {n["status"] for n in campaigns["nodes"]} == {"COMPLETED"}
    read = [m for n in campaigns["nodes"] for m in n["messages"]["nodes"]]
    assert read
    assert all(m["status"] == "READ" and m["contact"]["phone"] for m in read)
    assert any(m["interactions"] for m in read)
    for node in campaigns["nodes"]:
        stats = node["stats"]
        parts = ("pending", "sending", "sent", "delivered", "read", "failed")
        assert stats["total"] == sum(stats[k] for k in parts) > 0, stats

    refetched = answers["Refetch"]["node"]
    assert refetched["__typename"] == "Campaign"
    assert refetched["id"] == campaigns["nodes"][0]["id"]
    assert refetched["id"] == global_id("Campaign", refetched["databaseId"])

    contacts = [e["node"] for e in answers["Contacts"]["contacts"]["edges"]]
    assert contacts
    assert all("martin" in c["name"].lower() for c in contacts)

    dashboard = answers["Dashboard"]["dashboard"]
    stats = dashboard["messageStats"]
    parts = ("pending", "sending", "sent", "delivered", "read", "failed")
    assert stats["total"] == sum(stats[k] for k in parts) == demo_data.messages
    assert all(stats[k] > 0 for k in parts), stats
    by_status = {s["status"]: s["count"] for s in dashboard["campaignsByStatus"]}
    assert all(by_status[s] > 0 for s in ("SENDING", "COMPLETED", "CANCELLED", "FAILED"))
    assert len(dashboard["recentCampaigns"]) == 5
    assert answers["Dashboard"]["categories"]["nodes"]

    created = answers["CreateContact"]["createContact"]
    assert created["__typename"] == "CreateContactSuccess"
    assert created["contact"]["phone"] == "+33612345678"
    imported = answers["Import"]["importContacts"]
    assert (imported["created"], len(imported["errors"])) == (1, 1)
    assert answers["Launch"]["createCampaign"]["campaign"]["status"] == "DRAFT"
    assert answers["Start"]["startCampaign"]["campaign"]["status"] == "SENDING"

    # and recentCampaigns, newest first by id, is newest first by createdAt too
    dated = await run(
        "Recent", "query Recent { dashboard { recentCampaigns(first: 20) { createdAt } } }", {}
    )
    created_at = [c["createdAt"] for c in dated["dashboard"]["recentCampaigns"]]
    assert len(created_at) == DEMO_CAMPAIGNS + 1
    assert created_at == sorted(created_at, reverse=True)


def _error_class(rule: Rule) -> str:
    if rule.kind is ErrorClass.MESSAGE_FINAL:
        return "message-final" + (" (contact marked invalid)" if rule.undeliverable else "")
    if rule.kind is ErrorClass.RETRY_LATER:
        doubling = " doubling" if rule.backoff != 1 else ""
        return f"retry-later: {rule.retry_after_s:g} s{doubling}, {rule.deferrals} times"
    if rule.kind is ErrorClass.SLOW_DOWN:
        return "slow-down"
    assert rule.pause is not None
    return f"campaign-stopping: {rule.pause.name}" + (
        "" if rule.template_scoped else " (all campaigns)"
    )


def test_readme_shows_the_cloud_api_error_table() -> None:
    dispatch = (DOCS / "dispatch.md").read_text()
    section = dispatch.split("### Cloud API errors", 1)[1].split("\n## ", 1)[0]
    shown = re.findall(r"^\| (.+?) \| (.+?) \| (.+?) \|$", section, re.MULTILINE)[1:]
    permission = [code for code in ERRORS if 200 <= code < 300]
    expected = [
        ("200-299" if code == 200 else str(code), rule.title, _error_class(rule))
        for code, rule in sorted(ERRORS.items())
        if code not in permission[1:]
    ]
    expected += [
        (label, rule.title, _error_class(rule))
        for label, rule in (
            ("none, HTTP 429", HTTP_429),
            ("none, HTTP 5xx or no answer", UNAVAILABLE),
            ("none, other HTTP 4xx", REFUSED),
            ("any other code", UNKNOWN),
        )
    ]
    assert permission == list(range(200, 300))
    assert {ERRORS[code] for code in permission} == {ERRORS[200]}
    assert shown == expected


# --- the README stays short, and every link in it and in docs/ leads somewhere ---


def test_readme_is_short_and_links_every_page_of_the_docs() -> None:
    linked = set(re.findall(r"\]\((docs/[^)#]+)", README))

    assert len(README.encode()) < 15_000
    assert "ARCHITECTURE.md" in README.split("## ", 1)[0]  # linked before the first section
    assert linked == {f"docs/{page.name}" for page in DOCS.glob("*.md")}


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for a page's headings."""
    headings = re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize(
    "page", ["README.md", "ARCHITECTURE.md", *(f"docs/{p.name}" for p in sorted(DOCS.glob("*.md")))]
)
def test_every_relative_link_resolves(page: str) -> None:
    source = ROOT / page
    text = re.sub(r"```.*?```", "", source.read_text(), flags=re.DOTALL)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (source.parent / path).resolve() if path else source
        assert linked.exists(), (page, target)
        if anchor:
            assert anchor in _anchors(linked.read_text()), (page, target)


def _subsequence(lines: list[str], within: list[str]) -> bool:
    remaining = iter(within)
    return all(any(line == other for other in remaining) for line in lines)


def test_client_snippets_are_the_client_tests_code() -> None:
    """A JavaScript snippet that the README attributes to a client test (tests/clients/,
    run against a live server) is that test's code, line for line and in order."""
    found = re.findall(
        r"\(`tests/clients/([\w-]+\.test\.mjs)`\):\n\n```js\n(.*?)```", README, re.DOTALL
    )
    assert len(found) >= 2
    for name, block in found:
        test = [
            line.strip() for line in (ROOT / "tests" / "clients" / name).read_text().splitlines()
        ]
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        assert _subsequence(lines, test), f"{name}:\n{block}"
