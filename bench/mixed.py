"""A read/write mix against Herald at another commit, in the same run: what a busy API
serves, queries and mutations together, on a copy of the bench database.

    python -m bench.mixed [--against HEAD~1] [--duration 10] [--rounds 3] [--connections 16]
                          [--per-document]

`python -m bench.peers` runs it last. Each of wrk's requests is the next of a fixed cycle
of eight: six reads (a contacts page, a search, a contact with its categories and
messages, a small nested campaigns page, campaigns with their cached statistics, the
dashboard) and two writes (`createContact` with a phone no request used before,
`updateContact` renaming a contact; new phones are French +3375 numbers, which the seed never
makes). Both servers run as `herald serve --workers 1` on
one copy of the seeded database (`CREATE DATABASE ... TEMPLATE`, dropped afterwards, so
the bench database never grows), the other commit's code from a `git worktree` run by
this interpreter. Rounds alternate between the two; an answer with GraphQL errors, or a
write that did not succeed, counts as an error and the run reports it. Each round also
gives the server's CPU time per request (its process tree) and PostgreSQL's (the backends
connected to the database), steadier than requests per second on a shared machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from bench.common import (
    Scale,
    admin_url,
    authorization,
    cpu_seconds,
    database_cpu,
    database_cpu_used,
    lua_string,
    median,
    prepare,
    running_server,
    server_process,
    table,
)

ROOT = Path(__file__).resolve().parent.parent

READS = [
    "{ contacts(first: 20) { nodes { id phone name whatsappStatus } } }",
    '{ contacts(first: 20, search: "ma") { nodes { id phone name } } }',
    """query ($id: ID!) { contact(id: $id) { id name phone categories { id name }
        messages(first: 5) { nodes { id status } } } }""",
    """{ campaigns(first: 5) { nodes { id name messages(first: 10) {
        nodes { id status contact { id phone name } } } } } }""",
    """{ campaigns(first: 10) { nodes { id name status
        stats { sent delivered read failed deliveryRate } } } }""",
    "{ dashboard { contactCount campaignCount messageStats { sent deliveryRate } } }",
]
CREATE = """mutation ($phone: String!) { createContact(input: {phone: $phone, name: "Mix"}) {
    __typename ... on CreateContactSuccess { contact { id } } } }"""
UPDATE = """mutation ($id: ID!, $name: String!) { updateContact(id: $id, input: {name: $name}) {
    __typename ... on UpdateContactSuccess { contact { id name } } } }"""

# The cycle's steps, by their number in the wrk script.
STEPS = {
    0: "createContact",
    1: "updateContact",
    2: "contacts page (20)",
    3: "search page (cached)",
    4: "a contact, its categories and messages",
    5: "5 campaigns x 10 messages x contact",
    6: "10 campaigns' statistics (cached)",
    7: "dashboard (cached)",
}
_RESULT = "mix-result"
PHONES_PER_RUN = 200_000

# wrk's side: `request()` builds the next body of the cycle; `response()` counts answers
# with GraphQL errors or a write's failure type; `done()` prints one line to read.
_SCRIPT = """
local counter = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) failures = 0 end
local function body(document, variables)
  return '{"query":' .. document .. ',"variables":' .. variables .. '}'
end
function request()
  counter = counter + 1
  local step = only or counter % 8
  local id = ids[(counter * 7919) % #ids + 1]
  local text
  if step == 0 then
    text = body(create, string.format('{"phone":"+3375%07d"}', (first_phone + counter) % 10000000))
  elseif step == 1 then
    text = body(update, string.format('{"id":"%s","name":"Mix %d"}', id, counter))
  elseif step == 4 then
    text = body(reads[3], string.format('{"id":"%s"}', id))
  else
    text = body(reads[step - 1], '{}')
  end
  return wrk.format("POST", wrk.path, headers, text)
end
function response(status, headers, text)
  if status < 400 and text and (string.find(text, '"errors":', 1, true)
      or string.find(text, 'Error"', 1, true)) then
    failures = failures + 1
  end
end
function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("failures") end
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %f\\n", summary.requests, summary.duration,
    bad + e.connect + e.read + e.write + e.status + e.timeout, latency:percentile(50)))
end
""".replace("RESULT", _RESULT)


def lua(
    headers: Mapping[str, str],
    contact_ids: Sequence[int],
    first_phone: int,
    only: int | None = None,
) -> str:
    """The wrk script of the mix, its documents and the contacts it reads and renames; with
    `only`, every request is that step of the cycle (`STEPS`)."""
    lines = [
        f"only = {'nil' if only is None else only}",
        f"reads = {{ {', '.join(lua_string(json.dumps(d)) for d in READS)} }}",
        f"create = {lua_string(json.dumps(CREATE))}",
        f"update = {lua_string(json.dumps(UPDATE))}",
        f"ids = {{ {', '.join(str(i) for i in contact_ids)} }}",
        f"first_phone = {first_phone}",
        "headers = { ['Content-Type'] = 'application/json' }",
        *(f"headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items()),
    ]
    return "\n".join(lines) + _SCRIPT


def run_wrk(script: str, endpoint: str, seconds: int, connections: int) -> tuple[float, int]:
    """One wrk run of `script`: requests per second and errors."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="herald-mix-") as file:
        file.write(script)
        file.flush()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
        command += ["--timeout", "30s", "-s", file.name, endpoint]
        finished = subprocess.run(command, capture_output=True, text=True)
    line = next((row for row in finished.stdout.splitlines() if row.startswith(_RESULT)), None)
    if finished.returncode or line is None:
        raise RuntimeError(f"wrk failed: {finished.stdout}{finished.stderr}")
    requests, micros, errors, _ = line.split()[1:]
    return int(requests) / (int(micros) / 1e6), int(errors)


def check(endpoint: str, headers: Mapping[str, str], contact_id: int) -> None:
    """Every document of the mix answers without errors on this server, or the run stops."""
    samples = [(d, {"id": str(contact_id)} if "$id" in d else {}) for d in READS]
    samples += [(CREATE, {"phone": "+33699999999"}), (UPDATE, {"id": str(contact_id), "name": "M"})]
    for document, variables in samples:
        answer = httpx.post(
            endpoint, json={"query": document, "variables": variables}, headers=dict(headers)
        ).json()
        if answer.get("errors"):
            raise SystemExit(f"{endpoint} answers the mix with errors: {answer['errors']}")


@contextmanager
def database_copy(template: str) -> Iterator[str]:
    """A copy of the bench database for writes; dropped afterwards."""
    name = f"herald_mix_{int(time.time())}"
    base = admin_url().rsplit("/", 1)[0]

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(admin_url())
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}" TEMPLATE "{template.rsplit("/", 1)[1]}"'))
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def checkout(revision: str) -> Iterator[tuple[Path, str]]:
    """Herald's code at `revision`, in a worktree of its own; yields it and its short hash."""
    short = subprocess.run(
        ["git", "rev-parse", "--short", revision],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix="herald-at-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", "-q", str(folder), revision], cwd=ROOT, check=True
    )
    try:
        yield folder, short
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=True)


def contact_ids(database: str) -> list[int]:
    """The first 500 contacts of the database, by id."""

    async def read() -> list[int]:
        connection = await asyncpg.connect(database)
        try:
            rows = await connection.fetch("SELECT id FROM contacts ORDER BY id LIMIT 500")
        finally:
            await connection.close()
        return [row["id"] for row in rows]

    return asyncio.run(read())


@dataclass(frozen=True)
class Round:
    per_second: float
    errors: int
    server_cpu_us: float  # the server's process tree, per request
    database_cpu_us: float | None  # the backends connected to the database, per request


def run_round(script: str, url: str, database: str, seconds: int, connections: int) -> Round:
    """One wrk run of the mix against the server at `url`, with the CPU it cost per request:
    steadier than requests per second on a shared machine."""
    server = server_process(url)
    cpu, backends = cpu_seconds(server), database_cpu(database)
    rate, errors = run_wrk(script, url + "/graphql", seconds, connections)
    used = cpu_seconds(server) - cpu
    on_database = database_cpu_used(backends, database_cpu(database))
    requests = rate * seconds
    return Round(
        rate,
        errors,
        used / requests * 1e6,
        None if on_database is None else on_database / requests * 1e6,
    )


@contextmanager
def two_servers(
    template: str, against: str
) -> Iterator[tuple[str, dict[str, str], list[int], dict[str, str]]]:
    """A copy of the bench database, an admin key's headers, the contacts the mix reads,
    and Herald on that copy twice, by label: this checkout, then `against` (from a
    worktree), each `herald serve --workers 1` without an access line per request, as in
    bench.peers."""
    quiet = {"HERALD_LOG_LEVEL": "WARNING"}
    with ExitStack() as stack:
        database = stack.enter_context(database_copy(template))
        headers = authorization(database)
        ids = contact_ids(database)
        old, short = stack.enter_context(checkout(against))
        servers = {
            "this checkout": stack.enter_context(running_server(database, 1, None, **quiet)),
            f"{against} ({short})": stack.enter_context(running_server(database, 1, old, **quiet)),
        }
        yield database, headers, ids, servers


def measure(template: str, against: str, seconds: int, rounds: int, connections: int) -> str:
    """The mix on this checkout and on `against`, alternating; a Markdown table."""
    runs: dict[str, list[Round]] = {}
    with two_servers(template, against) as (database, headers, ids, servers):
        for url in servers.values():
            check(url + "/graphql", headers, ids[0])
        # Each run's new phones start a block of their own among the 10 million the
        # format holds: blocks of 200,000 keep 50 runs apart (a run makes a few thousand).
        phone = 0
        for label, url in servers.items():  # warm-up
            run_wrk(lua(headers, ids, phone), url + "/graphql", 2, connections)
            phone += PHONES_PER_RUN
            runs[label] = []
        for _ in range(rounds):
            for label, url in servers.items():
                script = lua(headers, ids, phone)
                runs[label].append(run_round(script, url, database, seconds, connections))
                phone += PHONES_PER_RUN
    labels = list(runs)

    def middle(label: str, value: Callable[[Round], float | None]) -> float | None:
        values = [v for v in map(value, runs[label]) if v is not None]
        return median(values) if values else None

    rows = []
    for label in labels:
        rates = [r.per_second for r in runs[label]]
        database_us = middle(label, lambda r: r.database_cpu_us)
        rows.append(
            [
                label,
                f"{median(rates):,.1f} ({min(rates):,.1f}-{max(rates):,.1f})",
                f"{middle(label, lambda r: r.server_cpu_us):,.0f}",
                "-" if database_us is None else f"{database_us:,.0f}",
                str(sum(r.errors for r in runs[label])),
            ]
        )
    rate = median([r.per_second for r in runs[labels[0]]])
    other = median([r.per_second for r in runs[labels[1]]])
    cpu = middle(labels[0], lambda r: r.server_cpu_us) or 0.0
    other_cpu = middle(labels[1], lambda r: r.server_cpu_us) or 1.0
    return (
        table(
            [
                "Herald",
                "mixed req/s",
                "server CPU µs per request",
                "PostgreSQL CPU µs per request",
                "errors",
            ],
            rows,
        )
        + f"\n\nThis checkout / {labels[1]}: {rate / other:.2f}x the requests per second, "
        f"{cpu / other_cpu:.2f}x the server CPU per request. `wrk -t1 -c{connections} "
        f"-d{seconds}s`, {rounds} rounds each, alternating; 6 reads and 2 writes in every 8 "
        "requests; medians of the rounds."
    )


def per_document(template: str, against: str, seconds: int, rounds: int, connections: int) -> str:
    """Each document of the mix alone, on this checkout and on `against`, alternating: the
    server CPU per request (a cached read alone stays cached: in the mix, writes make it
    miss)."""
    cpu: dict[tuple[int, str], list[float]] = {}
    with two_servers(template, against) as (database, headers, ids, servers):
        phone = 0
        for step in STEPS:
            for url in servers.values():  # warm-up
                run_wrk(lua(headers, ids, phone, step), url + "/graphql", 1, connections)
                phone += PHONES_PER_RUN
            for _ in range(rounds):
                for label, url in servers.items():
                    script = lua(headers, ids, phone, step)
                    found = run_round(script, url, database, seconds, connections)
                    if found.errors:
                        raise SystemExit(f"{STEPS[step]} failed {found.errors} times at {label}")
                    cpu.setdefault((step, label), []).append(found.server_cpu_us)
                    phone += PHONES_PER_RUN
    this, other = servers
    rows = []
    for step, name in STEPS.items():
        mine, theirs = median(cpu[step, this]), median(cpu[step, other])
        rows.append([name, f"{mine:,.0f}", f"{theirs:,.0f}", f"{mine / theirs:.2f}x"])
    return table(["document, alone", f"{this} µs", f"{other} µs", "ratio"], rows) + (
        f"\n\nServer CPU per request (its process tree), median of {rounds} alternating "
        f"rounds of `wrk -t1 -c{connections} -d{seconds}s` per document and server."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="the other commit (git revision)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16, help="wrk -c")
    parser.add_argument(
        "--per-document", action="store_true", help="each document alone, not the mix"
    )
    args = parser.parse_args()
    database = prepare(Scale(20_000, 50, 2_000))
    run = per_document if args.per_document else measure
    print(run(database, args.against, args.duration, args.rounds, args.connections))


if __name__ == "__main__":
    main()
