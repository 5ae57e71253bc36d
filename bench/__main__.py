"""`python -m bench`: a frontend-like query mix against `herald serve`, one table out.

Seeds a realistic data set once (default 20,000 contacts, 50 campaigns x 2,000
messages; --scale multiplies it), starts the server as operators do, and drives each
query of the mix at several concurrency levels with `wrk` (a C load generator, Debian
package `wrk`, so the client takes no Python core from the server). A Lua script varies
the inputs, counts errors (GraphQL errors and typed error results) and sums the
statements the server reports. The table goes to bench/results/ as Markdown and JSON
(plus a latency plot when matplotlib is installed). `--baseline` runs the same mix with
batching and caching turned off: the audit's N+1 state, for the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.common import Scale, authorization, lua_string, prepare, running_server, table

RESULTS = Path(__file__).with_name("results")

CAMPAIGN_DETAIL = """
query CampaignDetail($id: ID!) {
  campaign(id: $id) {
    id name status stats { total sent delivered read failed deliveryRate readRate }
    messages(first: 100) { nodes { id status contact { id phone name } } }
  }
}
"""

MIX: dict[str, str] = {
    "dashboard": """
query Dashboard {
  dashboard {
    contactCount categoryCount campaignCount campaignsByStatus { status count }
    messageStats { total sent delivered read failed deliveryRate readRate }
    recentCampaigns { id name status }
  }
}""",
    "campaigns list": """
query Campaigns {
  campaigns(first: 20) {
    totalCount nodes { id name status createdAt stats { total deliveryRate } }
  }
}""",
    "campaign detail (100 messages x contact)": CAMPAIGN_DETAIL,
    "contacts search page": """
query Contacts($search: String) {
  contacts(first: 20, search: $search) { totalCount nodes { id phone name whatsappStatus } }
}""",
    "categories with counts": """
query Categories { categories(first: 50) { nodes { id name contactCount } } }""",
    "createContact (mutation)": """
mutation CreateContact($phone: String!) {
  createContact(input: {phone: $phone, name: "Bench"}) { __typename }
}""",
    "startCampaign (mutation)": """
mutation StartCampaign($id: ID!) { startCampaign(id: $id) { __typename } }""",
}


@dataclass
class Row:
    query: str
    concurrency: int
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    requests_per_s: float
    sql_per_request: float
    errors: int


PHONE = "+336PHONE"  # wrk replaces it with a fresh French mobile number per request
# +33 62 xxxxxxx: valid for `phonenumbers` over the whole span; the seed uses +33 61.
PHONE_SPAN = 10_000_000


def bodies(name: str, query: str, campaign_ids: list[int], draft_ids: list[int]) -> list[str]:
    """The JSON bodies wrk cycles through for one query: mutations need fresh inputs."""

    def body(variables: dict[str, Any]) -> str:
        return json.dumps({"query": query, "variables": variables})

    if name.startswith("campaign detail"):
        return [body({"id": str(i)}) for i in campaign_ids]
    if name.startswith("contacts search"):
        return [body({"search": str(n)}) for n in range(10, 100)]
    if name.startswith("startCampaign"):  # each draft campaign is started once
        return [body({"id": str(i)}) for i in draft_ids]
    if name.startswith("createContact"):
        return [body({"phone": PHONE})]
    return [body({})]


_RESULT = "mix-result"

# Runs in wrk: request() takes the next body, response() counts GraphQL errors and typed
# errors (a `__typename` ending in Error) and sums the statement counts the server reports
# in its thread; done() adds up the threads and prints one line for cell() to read.
_LUA = r"""
wrk.method = "POST"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) n, errors, statements, counted = 0, 0, 0, 0 end
function request()
  n = n + 1
  local body = bodies[(n - 1) % #bodies + 1]
  body = string.gsub(body, "%+336PHONE", string.format("+3362%07d", (phone_base + n) % PHONE_SPAN))
  return wrk.format(nil, "/graphql", nil, body)
end
function response(status, headers, body)
  if status < 400 and (string.find(body, '"errors":', 1, true)
      or string.find(body, '"__typename":"%a*Error"')) then
    errors = errors + 1
  end
  local count = string.match(body, '"sqlStatements":(%d+)')
  if count then statements = statements + tonumber(count); counted = counted + 1 end
end
function done(summary, latency, requests)
  local e = summary.errors
  local bad, sql, answers = e.connect + e.read + e.write + e.status + e.timeout, 0, 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("errors")
    sql = sql + thread:get("statements")
    answers = answers + thread:get("counted")
  end
  io.write(string.format("RESULT %d %d %d %d %d %f %f %f\n",
    summary.requests, summary.duration, bad, sql, answers,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
""".replace("RESULT", _RESULT)


def lua_script(headers: dict[str, str], cycle: list[str], phone_base: int) -> str:
    """The Lua wrk runs; numbers `phone_base + 1` onwards are this cell's new phones."""
    lines = [f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items()]
    lines.append("bodies = {" + ",\n".join(lua_string(b) for b in cycle) + "}")
    lines.append(f"phone_base = {phone_base}")
    lines.append(f"PHONE_SPAN = {PHONE_SPAN}")
    return "\n".join(lines) + "\n" + _LUA


def cell(url: str, name: str, script: str, connections: int, seconds: int) -> Row:
    """One `wrk -t1 -c<connections>` run of one query."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="herald-mix-") as file:
        file.write(script)
        file.flush()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
        command += ["--timeout", "30s", "-s", file.name, url + "/graphql"]
        finished = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next((x for x in finished.stdout.splitlines() if x.startswith(_RESULT)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {finished.stdout}{finished.stderr}")
    requests, micros, errors, statements, counted, p50, p95, p99 = line.split()[1:]
    return Row(
        query=name,
        concurrency=connections,
        requests=int(requests),
        p50_ms=round(float(p50) / 1000, 1),
        p95_ms=round(float(p95) / 1000, 1),
        p99_ms=round(float(p99) / 1000, 1),
        requests_per_s=round(int(requests) / (int(micros) / 1e6), 1),
        sql_per_request=round(int(statements) / max(int(counted), 1), 1),
        errors=int(errors),
    )


async def fixtures(database: str, drafts: int) -> tuple[list[int], list[int], int]:
    """Campaign ids to read, fresh draft campaigns for startCampaign, and the message count."""
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(CLEAN_UP)
        messages = await conn.fetchval("SELECT count(*) FROM messages")
        readable = [
            r["campaign_id"]
            for r in await conn.fetch(
                "SELECT campaign_id FROM messages GROUP BY campaign_id HAVING count(*) >= 100"
            )
        ]
        target = await conn.fetchval("SELECT id FROM categories ORDER BY id LIMIT 1")
        # An approved template, its one parameter filled with the contact's name: what a
        # startCampaign accepts.
        await conn.execute(
            "INSERT INTO templates (name, language, status, category, body, parameter_count)"
            " VALUES ('bench', 'en', 'APPROVED', 'MARKETING', 'Hello {{1}}', 1)"
            " ON CONFLICT (name, language) DO NOTHING"
        )
        draft_ids = [
            r["id"]
            for r in await conn.fetch(
                "INSERT INTO campaigns (name, template_name, template_language, template_body,"
                " template_parameters)"
                " SELECT 'bench ' || g, 'bench', 'en', 'Hello {{1}}', '[{\"source\": \"name\"}]'"
                " FROM generate_series(1, $1) g RETURNING id",
                drafts,
            )
        ]
        await conn.executemany(
            "INSERT INTO campaign_categories (campaign_id, category_id) VALUES ($1, $2)",
            [(d, target) for d in draft_ids],
        )
        return readable, draft_ids, messages
    finally:
        await conn.close()


def _baseline_rates() -> dict[tuple[str, int], float]:
    """req/s of the last `--baseline` run, per (query, concurrency), when there is one."""
    path = RESULTS / "baseline.json"
    if not path.exists():
        return {}
    rows = json.loads(path.read_text())["rows"]
    return {(r["query"], r["concurrency"]): r["requests_per_s"] for r in rows}


def _ratio(row: Row, baseline: dict[tuple[str, int], float]) -> str:
    rate = baseline.get((row.query, row.concurrency))
    return f"{row.requests_per_s / rate:.1f}x" if rate else "-"


# The mix's own campaigns and contacts, removed before each run so that "the newest
# campaigns" stay the seeded ones, with their messages, for every other benchmark.
CLEAN_UP = """
DELETE FROM campaigns WHERE name LIKE 'bench %';
DELETE FROM contacts WHERE name = 'Bench';
"""


async def clean_up(database: str) -> None:
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(CLEAN_UP)
    finally:
        await conn.close()


def plot(rows: list[Row], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    figure, axis = plt.subplots(figsize=(8, 5))
    for name in dict.fromkeys(r.query for r in rows):
        points = [(r.concurrency, r.p99_ms) for r in rows if r.query == name]
        axis.plot(*zip(*points, strict=True), marker="o", label=name)
    axis.set_xlabel("concurrent requests")
    axis.set_ylabel("p99 latency (ms)")
    axis.set_xscale("log", base=2)
    levels = sorted({r.concurrency for r in rows})
    axis.set_xticks(levels, [str(level) for level in levels])
    axis.set_title("Herald: p99 latency vs concurrency")
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the data set")
    parser.add_argument("--seconds", type=int, default=5, help="wrk run per query and level")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--workers", type=int, default=2, help="herald serve --workers")
    parser.add_argument("--baseline", action="store_true", help="no batching, no caching")
    parser.add_argument(
        "--auth-header",
        default=os.environ.get("HERALD_BENCH_AUTHORIZATION", ""),
        help="Authorization header to send (default: a fresh admin key of the bench database)",
    )
    args = parser.parse_args()
    scale = Scale(round(20_000 * args.scale), round(50 * args.scale), 2_000)
    levels = [int(c) for c in args.concurrency.split(",")]
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed to drive the load: apt-get install wrk")
    database = prepare(scale)
    # startCampaign starts each draft once: enough drafts for the fastest server seen, x3.
    drafts = 1_500 * (args.seconds + 1) * len(levels)
    readable, draft_ids, messages = asyncio.run(fixtures(database, drafts))
    headers = {"Authorization": args.auth_header} if args.auth_header else authorization(database)
    headers["Content-Type"] = "application/json"
    rows: list[Row] = []
    phones = 0  # the mix's contacts were removed by fixtures()
    naive = "true" if args.baseline else "false"
    with running_server(database, args.workers, HERALD_NAIVE_RESOLVERS=naive) as url:
        for name, query in MIX.items():
            cycle = bodies(name, query, readable, draft_ids)
            for level in levels:
                for seconds in (1, args.seconds):  # a warm-up, then the measured run
                    row = cell(url, name, lua_script(headers, cycle, phones), level, seconds)
                    phones += row.requests + level  # never create a phone twice
                    if name.startswith("startCampaign"):  # never start a draft twice
                        cycle = cycle[row.requests + level :]
                rows.append(row)
                print(row, file=sys.stderr)
    asyncio.run(clean_up(database))
    RESULTS.mkdir(exist_ok=True)
    stem = "baseline" if args.baseline else "herald"
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    baseline = _baseline_rates() if not args.baseline else {}
    markdown = table(
        (
            "query",
            "concurrency",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "req/s",
            "SQL/request",
            "errors",
            "req/s vs baseline",
        ),
        [
            (
                r.query,
                r.concurrency,
                r.p50_ms,
                r.p95_ms,
                r.p99_ms,
                r.requests_per_s,
                r.sql_per_request,
                r.errors,
                _ratio(r, baseline),
            )
            for r in rows
        ],
    )
    header = (
        f"{stem}: {scale.contacts:,} contacts, {scale.campaigns} campaigns, {messages:,} messages "
        f"(up to {scale.messages_per_campaign:,} per started campaign); "
        f"herald serve --workers {args.workers}; "
        f"`wrk -t1 -c<concurrency> -d{args.seconds}s` per cell after a 1 s warm-up; "
        f"wrk and server on one machine ({machine})."
    )
    (RESULTS / f"{stem}.md").write_text(header + "\n\n" + markdown + "\n")
    (RESULTS / f"{stem}.json").write_text(
        json.dumps({"setup": header, "rows": [asdict(r) for r in rows]}, indent=2)
    )
    if plot(rows, RESULTS / f"{stem}.png"):
        print(f"plot: {RESULTS / (stem + '.png')}", file=sys.stderr)
    print(header + "\n\n" + markdown)


if __name__ == "__main__":
    main()
