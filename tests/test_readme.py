"""The README's commands and configuration table stay in step with CI and Settings."""

from __future__ import annotations

import re

from app.config import Settings
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


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


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^\| `(HERALD_[A-Z0-9_]+)` \|", README, re.MULTILINE))

    assert documented == {f"HERALD_{name.upper()}" for name in Settings.model_fields}


def test_readme_graphql_examples_are_valid() -> None:
    """Every example document in the README validates against the current schema."""
    from graphql import parse, validate

    from schema.schema import schema

    blocks = re.findall(r"```graphql\n(.*?)```", README, flags=re.DOTALL)
    assert len(blocks) >= 4
    for block in blocks:
        errors = validate(schema._schema, parse(block))
        assert errors == [], (block, errors)
