"""Writes schema/schema.graphql from the code: `python -m schema.export`."""

from __future__ import annotations

from pathlib import Path

from strawberry.printer import print_schema

from schema.schema import schema

PATH = Path(__file__).with_name("schema.graphql")


def main() -> None:
    PATH.write_text(print_schema(schema) + "\n")


if __name__ == "__main__":
    main()
