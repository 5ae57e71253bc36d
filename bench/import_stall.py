"""How long a 10,000-row import holds a server's event loop: this checkout against Herald at
another commit.

    python -m bench.import_stall [--against HEAD~1] [--imports 8] [--rows 10000]

Each server (`herald serve --workers 1`, on one fresh database) gets a prober of its own, a
process that sends `{ __typename }` every 5 ms around each import to that server and
records each answer's latency. While an import holds the event loop, the probe waits for
it: the worst latency of a probe sent during an import is that import's longest stall (plus
the ~1 ms a probe costs). The rows are a frontend's (a phone, a name, two attributes: 0.98
MB for 10,000) and the answer returns every contact; imports alternate between the
servers. The probes of the half second before each import show what the machine adds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import time
from collections.abc import Sequence
from contextlib import ExitStack
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from typing import Any

import httpx
import orjson

from bench.common import (
    authorization,
    fresh_database,
    median,
    percentile,
    running_server,
    table,
)
from bench.mixed import checkout

IMPORT = """mutation ($rows: [ContactImportRow!]!) {
  importContacts(input: {rows: $rows}) {
    __typename
    ... on ImportContactsSuccess {
      created updated contacts { id phone name attributes } errors { index reason }
    }
  }
}"""
PROBE = b'{"query": "{ __typename }"}'
FIRST = ["Camille", "Léa", "Hugo", "Manon", "Lucas", "Chloé", "Louis", "Emma"]
LAST = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand"]
CITIES = ["Lyon", "Paris", "Lille", "Nantes", "Rennes"]
_phones = itertools.count(10_000_000)  # +336 and 8 digits: valid French mobiles, all new

# (probe sent at, its latency), in seconds
Samples = list[tuple[float, float]]


def rows(count: int) -> list[dict[str, Any]]:
    made = []
    for i in range(count):
        first = FIRST[i % len(FIRST)]
        made.append(
            {
                "phone": f"+336{next(_phones):08d}",
                "name": f"{first} {LAST[i // len(FIRST) % len(LAST)]}",
                "attributes": {"first_name": first, "city": CITIES[i % len(CITIES)]},
            }
        )
    return made


def probe(url: str, active: Event, stop: Event, out: Queue[Samples]) -> None:
    """`{ __typename }` every 5 ms while `active`, until `stop`; the samples go to `out`."""
    samples: Samples = []
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=url, timeout=60) as http:
        while not stop.is_set():
            if not active.wait(0.05):
                continue
            sent = time.time()
            http.post("/graphql", content=PROBE, headers=headers).raise_for_status()
            samples.append((sent, time.time() - sent))
            time.sleep(max(0.0, 0.005 - (time.time() - sent)))
    out.put(samples)


def summary(samples: Samples, imports: Sequence[tuple[float, float]]) -> list[str]:
    """Worst stall per import (median, max), imports with a probe over 100 ms, and the
    probes outside the imports (p50, max), in ms."""
    worst = []
    for start, end in imports:
        during = [latency for sent, latency in samples if start <= sent <= end]
        worst.append(max(during, default=0.0) * 1000)
    quiet = [
        latency * 1000
        for sent, latency in samples
        if not any(start - 0.1 <= sent <= end for start, end in imports)
    ]
    return [
        f"{median(worst):.0f}",
        f"{max(worst):.0f}",
        f"{sum(w > 100 for w in worst)} of {len(worst)}",
        f"{percentile(quiet, 0.5):.1f} / {max(quiet):.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD~1", help="the other commit (git revision)")
    parser.add_argument("--imports", type=int, default=8, help="imports per server")
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    quiet = {"HERALD_LOG_LEVEL": "WARNING", "HERALD_QUERY_TIMEOUT_S": "120"}
    stop = multiprocessing.Event()
    with ExitStack() as stack:
        database = asyncio.run(fresh_database("herald_bench_import_stall"))
        headers = authorization(database)
        old, short = stack.enter_context(checkout(args.against))
        urls = {
            "this checkout": stack.enter_context(running_server(database, 1, None, **quiet)),
            short: stack.enter_context(running_server(database, 1, old, **quiet)),
        }
        clients = {
            label: httpx.Client(base_url=url, headers=headers, timeout=120)
            for label, url in urls.items()
        }
        for client in clients.values():  # warm-up: plans, caches, the key
            client.post("/graphql", json={"query": IMPORT, "variables": {"rows": rows(50)}})
        queues: dict[str, Queue[Samples]] = {label: multiprocessing.Queue() for label in urls}
        # Only the server under import is probed: the other one's probes would compete
        # with it for the machine's cores.
        active = {label: multiprocessing.Event() for label in urls}
        probers = [
            multiprocessing.Process(target=probe, args=(url, active[label], stop, queues[label]))
            for label, url in urls.items()
        ]
        for prober in probers:
            prober.start()
        imports: dict[str, list[tuple[float, float]]] = {label: [] for label in urls}
        for _ in range(args.imports):
            for label, client in clients.items():
                body = orjson.dumps({"query": IMPORT, "variables": {"rows": rows(args.rows)}})
                active[label].set()
                time.sleep(0.5)  # probes of the machine alone
                start = time.time()
                response = client.post(
                    "/graphql", content=body, headers={"content-type": "application/json"}
                )
                imports[label].append((start, time.time()))
                time.sleep(0.1)
                active[label].clear()
                created = response.json()["data"]["importContacts"].get("created")
                if created != args.rows:
                    raise SystemExit(f"{label}: {response.text[:500]}")
        stop.set()
        samples = {label: queues[label].get() for label in urls}
        for prober in probers:
            prober.join()
    headings = ["server", "worst stall: median ms", "max ms", "imports over 100 ms"]
    headings.append("other probes: p50 / max ms")
    print(table(headings, [[label, *summary(samples[label], imports[label])] for label in urls]))
    print(
        f"\n{args.imports} imports of {args.rows:,} rows per server, alternating; a probe "
        "every 5 ms per server."
    )


if __name__ == "__main__":
    main()
