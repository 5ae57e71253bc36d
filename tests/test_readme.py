"""The README's commands and configuration table stay in step with CI and Settings."""

from __future__ import annotations

import re
import tomllib
from enum import Enum

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
