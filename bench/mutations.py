"""What a mutation costs the server: this checkout against Herald at another commit.

    python -m bench.mutations [--against HEAD~1] [--repeat 40]

For `createContact`, `updateContact`, `importContacts` (1,000 new rows) and
`startCampaign` (a campaign of 200 contacts, created just before), each server answers
the mutation `--repeat` times in a row, one request at a time, and the table gives the
server's CPU milliseconds per request (its process's user + system time around the
requests, so the client's time is not in it) and the median of its `Server-Timing`
(which includes the waits on PostgreSQL). Both servers run as `herald serve --workers 1`
on one copy of the seeded database; rounds alternate between them.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any

import httpx

from bench.common import (
    Scale,
    authorization,
    cpu_seconds,
    median,
    prepare,
    running_server,
    server_process,
    table,
)
from bench.mixed import checkout, contact_ids, database_copy

CREATE = """mutation ($phone: String!) { createContact(input: {phone: $phone, name: "B"}) {
    __typename } }"""
UPDATE = """mutation ($id: ID!, $name: String!) { updateContact(id: $id, input: {name: $name}) {
    __typename } }"""
IMPORT = """mutation ($rows: [ContactImportRow!]!) { importContacts(input: {rows: $rows}) {
    __typename ... on ImportContactsSuccess { created } } }"""
CATEGORY = """mutation ($name: String!) { createCategory(input: {name: $name}) {
    ... on CreateCategorySuccess { category { id } } } }"""
JOIN = """mutation ($category: ID!, $contacts: [ID!]!) {
    addContactsToCategory(categoryId: $category, contactIds: $contacts) { __typename } }"""
CAMPAIGN = """mutation ($category: ID!) { createCampaign(input: {name: "bench",
    targetCategoryIds: [$category], template: {name: "spring_sale", language: "en",
    parameters: [{source: ATTRIBUTE, value: "first_name"}, {source: TEXT, value: "20"}]}}) {
    ... on CreateCampaignSuccess { campaign { id } } } }"""
START = "mutation ($id: ID!) { startCampaign(id: $id) { __typename } }"

_phones = itertools.count(40_000_000)


class Client:
    """One server's endpoint, its API key and its process."""

    def __init__(self, base: str, headers: Mapping[str, str]) -> None:
        self.http = httpx.Client(base_url=base, headers=dict(headers), timeout=60)
        self.process = server_process(base)

    def call(self, document: str, variables: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """The answer's data and the server's own time for it, in ms."""
        response = self.http.post("/graphql", json={"query": document, "variables": variables})
        body = response.json()
        if body.get("errors"):
            raise SystemExit(f"errors: {body['errors']}")
        timing = response.headers["server-timing"]
        return body["data"], float(timing.split("dur=")[1].split(",")[0])


def _create(client: Client, _: list[int]) -> tuple[str, dict[str, Any]]:
    return CREATE, {"phone": f"+336{next(_phones):08d}"}


def _update(client: Client, ids: list[int]) -> tuple[str, dict[str, Any]]:
    return UPDATE, {"id": str(ids[next(_phones) % len(ids)]), "name": f"B{next(_phones)}"}


def _import(client: Client, _: list[int]) -> tuple[str, dict[str, Any]]:
    rows = [{"phone": f"+336{next(_phones):08d}", "name": "Row"} for _ in range(1000)]
    return IMPORT, {"rows": rows}


def _start(client: Client, ids: list[int]) -> tuple[str, dict[str, Any]]:
    category = getattr(client, "category", None)
    if category is None:
        data, _ = client.call(CATEGORY, {"name": f"bench start {next(_phones)}"})
        category = data["createCategory"]["category"]["id"]
        client.call(JOIN, {"category": category, "contacts": [str(i) for i in ids[:200]]})
        client.category = category  # type: ignore[attr-defined]
    data, _ = client.call(CAMPAIGN, {"category": category})
    return START, {"id": data["createCampaign"]["campaign"]["id"]}


MUTATIONS: dict[str, Callable[[Client, list[int]], tuple[str, dict[str, Any]]]] = {
    "createContact": _create,
    "updateContact": _update,
    "importContacts (1,000 rows)": _import,
    "startCampaign (200 contacts)": _start,
}


def run(
    client: Client, make: Callable[..., tuple[str, dict[str, Any]]], ids: list[int], repeat: int
) -> tuple[float, float]:
    """CPU ms per request and the median Server-Timing of `repeat` requests."""
    requests = [make(client, ids) for _ in range(repeat)]  # set-up calls are not counted
    before = cpu_seconds(client.process)
    timings = [client.call(document, variables)[1] for document, variables in requests]
    return (cpu_seconds(client.process) - before) * 1000 / repeat, median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="the other commit (git revision)")
    parser.add_argument("--repeat", type=int, default=40, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    template = prepare(Scale(20_000, 50, 2_000))
    quiet = {"HERALD_LOG_LEVEL": "WARNING"}
    with ExitStack() as stack:
        database = stack.enter_context(database_copy(template))
        headers = authorization(database)
        ids = contact_ids(database)
        old, short = stack.enter_context(checkout(args.against))
        clients = {
            "this checkout": Client(
                stack.enter_context(running_server(database, 1, None, **quiet)), headers
            ),
            short: Client(stack.enter_context(running_server(database, 1, old, **quiet)), headers),
        }
        rows = []
        for name, make in MUTATIONS.items():
            for client in clients.values():  # warm-up
                run(client, make, ids, 3)
            cpu: dict[str, list[float]] = {label: [] for label in clients}
            timing: dict[str, list[float]] = {label: [] for label in clients}
            for _ in range(args.rounds):
                for label, client in clients.items():
                    spent, server = run(client, make, ids, args.repeat)
                    cpu[label].append(spent)
                    timing[label].append(server)
            ours, theirs = (median(cpu[label]) for label in clients)
            rows.append(
                [name]
                + [f"{median(cpu[label]):.2f} / {median(timing[label]):.1f}" for label in clients]
                + [f"{theirs / ours:.2f}x"]
            )
    labels = [f"{label}: CPU ms / Server-Timing ms" for label in clients]
    print(table(["mutation", *labels, f"CPU {short} / this checkout"], rows))
    print(
        f"\n{args.rounds} rounds of {args.repeat} requests per mutation and server, "
        "alternating, one request at a time; medians of the rounds."
    )


if __name__ == "__main__":
    main()
