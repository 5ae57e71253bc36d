"""Each code generator against the plain closure it stands in for, in one run.

    python -m bench.codegen [--rounds 15]

Herald generates Python source in two places: the loaders' row builders
(`loaders.base.projected`) and query plans (`schema/execution/plans/generate.py`). A generator is
worth its source only while it beats a closure doing the same work from a table of
columns or fields. Both run on the same inputs, built from rows of the seeded bench
database: a 1,000-message page with contacts (8 columns), the same with none of its global
ids remembered yet (each encoded: a page read for the first time), a 1,000-contact page
(4 columns) and a 10-message page; then the completion of 1,000 messages x contact
(`messages { nodes { id status contact { id phone name } } }`) by the generated plan and by
a closure tree over the same collected fields. Rounds alternate; the table gives the
fastest round (the least disturbed by the rest of the machine) and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import timeit
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import asyncpg
from graphql import (
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    parse,
)

from app.compat import graphql_schema
from app.messages.columns import CONTACT_PREFIX
from bench.common import Scale, prepare, table
from loaders.base import ENUMS, projected
from schema.contacts.types import ContactType
from schema.execution.fields import STRAWBERRY_FIELD
from schema.execution.plans import DocumentPlans
from schema.messages.types import MessageType
from schema.schema import schema

MESSAGES = """SELECT m.campaign_id AS owner_id, m.campaign_id, m.contact_id, m.status, m.id,
  c.phone AS contact__phone, c.name AS contact__name, c.id AS contact__id
FROM messages m JOIN contacts c ON c.id = m.contact_id ORDER BY m.id DESC LIMIT 1000"""
CONTACTS = "SELECT phone, name, whatsapp_status, id FROM contacts ORDER BY id DESC LIMIT 1000"
DOCUMENT = """query CampaignPage { campaigns(first: 10) { nodes {
  messages(first: 100) { nodes { id status contact { id phone name } } } } } }"""
COMPLETER = "complete_CampaignPage__campaigns_nodes_messages"

Build = Callable[[Sequence[Any]], list[Any]]
Column = tuple[str, int, Callable[[Any], Any] | None]  # attribute, index, conversion


def closure_builder(fields: tuple[str, ...], cls: type, nested: type | None = None) -> Build:
    """What `projected` generates, as a loop over a table of (attribute, index, conversion)."""
    new: Any = object.__new__

    def columns(attribute: str, index: int, built: Any) -> list[Column]:
        """The attributes a column sets: the id as the global id and as `database_id`."""
        if attribute == "id":
            return [("id", index, built.node_id), ("database_id", index, None)]
        table = ENUMS.get(attribute)
        return [(attribute, index, None if table is None else table.__getitem__)]

    own: list[Column] = []
    inner: list[Column] = []
    for index, name in enumerate(fields):
        if name == "owner_id":
            continue
        if nested is not None and name.startswith(CONTACT_PREFIX):
            inner += columns(name.removeprefix(CONTACT_PREFIX), index, nested)
        else:
            own += columns(name, index, cls)

    def build(rows: Sequence[Any]) -> list[Any]:
        built = []
        for row in rows:
            values = {a: row[i] if c is None else c(row[i]) for a, i, c in own}
            if inner:
                contact = new(nested)
                contact.__dict__ = {a: row[i] if c is None else c(row[i]) for a, i, c in inner}
                values["contact"] = contact
            item = new(cls)
            item.__dict__ = values
            built.append(item)
        return built

    return build


def closure_completer(type_: GraphQLOutputType, selections: Any) -> Callable[[Any], Any]:
    """A plain field's completion as nested closures (plain attributes, lists and leaves:
    what the plan writes as one dict display per object), with the plan's shortcuts: a
    `str` passes as itself, an enum member's serialization is remembered."""
    non_null = isinstance(type_, GraphQLNonNull)
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    complete: Callable[[Any], Any]
    if isinstance(inner, GraphQLScalarType | GraphQLEnumType):
        serialize = inner.coerce_output_value
        memo: dict[Any, Any] = {}
        if inner.name in ("String", "ID"):

            def complete(value: Any) -> Any:
                return value if value.__class__ is str else serialize(value)

        elif isinstance(inner, GraphQLEnumType):  # remembered per member, as the plan does

            def complete(value: Any) -> Any:
                found = memo.get((value.__class__, value))
                if found is None:
                    found = memo[(value.__class__, value)] = serialize(value)
                return found

        else:
            complete = serialize
    elif isinstance(inner, GraphQLList):
        item = closure_completer(inner.of_type, selections)

        def complete(value: Any) -> Any:
            return [item(x) for x in value]

    else:
        assert isinstance(inner, GraphQLObjectType)
        fields = []
        for selection in selections:
            field = inner.fields[selection.name.value]
            attribute = field.extensions[STRAWBERRY_FIELD].python_name
            sub = selection.selection_set.selections if selection.selection_set else None
            fields.append((selection.name.value, attribute, closure_completer(field.type, sub)))

        def complete(value: Any) -> Any:
            return {key: part(getattr(value, attribute)) for key, attribute, part in fields}

    if non_null:
        return complete
    return lambda value: None if value is None else complete(value)


def first_read(build: Build, rows: Sequence[Any]) -> Callable[[], list[Any]]:
    """`build(rows)` with none of the page's global ids remembered (schema/common/ids.py
    remembers them once encoded): what a page read for the first time costs."""

    def run() -> list[Any]:
        MessageType.node_id.memo.clear()
        ContactType.node_id.memo.clear()
        return build(rows)

    return run


def compare(cases: Sequence[tuple[str, Callable[[], Any]]], number: int, rounds: int) -> list[Any]:
    times: dict[str, list[float]] = {label: [] for label, _ in cases}
    for _ in range(rounds):
        for label, call in cases:
            times[label].append(timeit.timeit(call, number=number) / number * 1e6)
    fastest = {label: min(values) for label, values in times.items()}
    generated = fastest[cases[0][0]]
    return [
        [
            label,
            f"{fastest[label]:,.1f}",
            f"{statistics.median(times[label]):,.1f}",
            f"{fastest[label] / generated:.2f}x",
        ]
        for label, _ in cases
    ]


def _plan_completer() -> Callable[[Any, Any, Any], Any]:
    """The generated completion of a messages connection, from the plan of DOCUMENT."""
    found = DocumentPlans(schema).get(DOCUMENT, None, parse(DOCUMENT))
    assert found is not None
    executor = schema.execution_context_class.build(
        graphql_schema(schema), found.document, None, None, {}, None
    )
    assert not isinstance(executor, list)
    plan = found.plan(executor)
    assert plan is not None
    completer: Callable[[Any, Any, Any], Any] = plan.__globals__[COMPLETER]
    return completer


async def _rows(database: str) -> tuple[Any, Any]:
    connection = await asyncpg.connect(database)
    try:
        return await connection.fetch(MESSAGES), await connection.fetch(CONTACTS)
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    messages, contacts = asyncio.run(_rows(prepare(Scale(20_000, 50, 2_000))))
    fields, contact_fields = tuple(messages[0].keys()), tuple(contacts[0].keys())
    nested = (CONTACT_PREFIX, "contact", ContactType)
    generated = projected(fields, MessageType, nested=nested)
    closure = closure_builder(fields, MessageType, ContactType)
    flat = projected(contact_fields, ContactType)
    flat_closure = closure_builder(contact_fields, ContactType)
    built = generated(messages)
    assert [vars(m) | {"contact": vars(m.contact)} for m in built] == [
        vars(m) | {"contact": vars(m.contact)} for m in closure(messages)
    ]
    connection = SimpleNamespace(nodes=built)
    plan_complete = _plan_completer()
    messages_type = graphql_schema(schema).get_type("MessageConnection")
    assert isinstance(messages_type, GraphQLObjectType)
    selections = parse(DOCUMENT).definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    messages_field = selections.selection_set.selections[0].selection_set.selections[0]
    tree = closure_completer(GraphQLNonNull(messages_type), messages_field.selection_set.selections)
    assert plan_complete(connection, None, None) == tree(connection)
    sections = [
        (
            "row builder, 1,000 messages x contact (8 columns)",
            [("generated", lambda: generated(messages)), ("closure", lambda: closure(messages))],
            50,
        ),
        (
            "row builder, 1,000 messages x contact, ids not remembered yet",
            [
                ("generated", first_read(generated, messages)),
                ("closure", first_read(closure, messages)),
            ],
            50,
        ),
        (
            "row builder, 1,000 contacts (4 columns)",
            [("generated", lambda: flat(contacts)), ("closure", lambda: flat_closure(contacts))],
            50,
        ),
        (
            "row builder, 10 messages x contact",
            [
                ("generated", lambda: generated(messages[:10])),
                ("closure", lambda: closure(messages[:10])),
            ],
            2_000,
        ),
        (
            "plan, 1,000 messages x contact completed",
            [
                ("generated", lambda: plan_complete(connection, None, None)),
                ("closure", lambda: tree(connection)),
            ],
            50,
        ),
    ]
    rows = []
    for title, cases, number in sections:
        for row in compare(cases, number, rounds):
            rows.append([title, *row])
    print(table(["what", "code", "fastest µs", "median µs", "time / generated"], rows))


if __name__ == "__main__":
    main()
