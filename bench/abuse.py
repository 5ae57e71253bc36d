"""`python -m bench.abuse`: each known attack against a running `herald serve`, one table out.

Starts `herald serve --workers 1` in production settings, rate limiting on, on a small
seeded database. For each attack it prints how the server answered, the server CPU one
attack request cost (its process's CPU time over the requests `wrk` completed, with nothing
else running), and the p50/p99 of a probe query (a small page, `wrk` at two connections,
20 requests/s each) while the attack runs, against the same probe on a quiet server. HTTP
attacks are driven by `wrk` with a Lua script, so no Python client takes a core from the
server; the few that are not floods (slow connections, big headers, a WebSocket frame) are
made by this process and take little CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import redis
import websockets
from websockets.typing import Subprotocol

from app.http.ratelimit import PREFIX as RATE_LIMIT_PREFIX
from app.whatsapp.providers import sign
from bench.common import (
    Scale,
    authorization,
    cpu_seconds,
    lua_string,
    median,
    prepare,
    redis_url,
    running_server,
    server_process,
    table,
)

PROBE = "{ campaigns(first: 5) { nodes { id name status } } }"
_RESULT = "ABUSE_RESULT"
_REPORT = f"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("{_RESULT} %d %d %d %d %f %f\\n", summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Attack:
    name: str
    lua: str  # a wrk script (its `request` builds each request), or "" for `action`
    action: Callable[[str], Any] | None = None  # holds the attack for the probe's duration
    path: str = "/graphql"
    sample: tuple[str, dict[str, str]] | None = None  # one request's body and headers
    method: str = "POST"  # a GET's sample is its path and query string instead of a body


@dataclass(frozen=True)
class Run:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float


def _post(body: str, headers: dict[str, str]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(body)}"]
    headers = {"Content-Type": "application/json", **headers}
    lines += [f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in headers.items()]
    return "\n".join(lines)


def _varying(template: str, headers: dict[str, str]) -> str:
    """POSTs whose body changes per request: `template` with `%d` replaced by a counter."""
    head = _post("", headers)
    return (
        head
        + f"""
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, string.format({lua_string(template)}, n))
end
"""
    )


def _new_text_each_time(name: str, document: str, headers: dict[str, str]) -> Attack:
    """An attack POSTing `document`, its `#%d` comment new in every request."""
    body = json.dumps({"query": document})
    return Attack(
        name,
        _varying(body.replace("%", "%%").replace("#%%d", "#%d"), headers),
        sample=(body.replace("%d", "1"), headers),
    )


def _got_new_text_each_time(name: str, document: str) -> Attack:
    """An attack without a key GETting `document`, its `#%d` comment new in every request."""
    path = "/graphql?query=" + quote(document.replace("#%d", "#"), safe="")
    script = f"""
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", {lua_string(path)} .. n)
end
"""
    return Attack(name, script, sample=(path + "1", {}), method="GET")


def _wrk(url: str, script: str, seconds: int, connections: int) -> Run:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="herald-abuse-") as file:
        file.write(script + _REPORT)
        file.flush()
        command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
        command += ["--timeout", "10s", "-s", file.name, url]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    line = next((row for row in done.stdout.splitlines() if row.startswith(_RESULT)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {done.stdout}{done.stderr}")
    requests, micros, status, errors, p50, p99 = line.split()[1:]
    return Run(
        int(requests),
        int(micros) / 1e6,
        int(status),
        int(errors),
        float(p50) / 1000,
        float(p99) / 1000,
    )


# -- Attacks that are not request floods ------------------------------------------------------


def _slowloris(url: str, seconds: float) -> str:
    """40 connections that send their request head one byte at a time, slowly."""
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(40):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
        sockets.append(sock)
    deadline, closed = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        for sock in sockets:
            try:
                sock.sendall(b"X")
            except OSError:
                closed += 1
        time.sleep(1)
    for sock in sockets:
        sock.close()
    return f"{len(sockets)} held; sends refused {closed} times"


def _big_headers(url: str, seconds: float) -> str:
    answers = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(url + "/graphql", headers={"X-Big": "a" * (8 << 20)}, json={})
            answers.add(str(answer.status_code))
        except httpx.HTTPError as exc:
            answers.add(type(exc).__name__)
    return "8 MB header: " + ", ".join(sorted(answers))


def _websocket_frames(url: str, seconds: float, name: str, message: str) -> str:
    """New sockets one after another, each sending `message` first (no key)."""

    async def attack() -> str:
        codes = set()
        sockets = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            endpoint = url.replace("http://", "ws://") + "/graphql"
            async with websockets.connect(
                endpoint, subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None
            ) as ws:
                sockets += 1
                try:
                    await ws.send(message)
                    await asyncio.wait_for(ws.recv(), 5)
                except websockets.ConnectionClosed as closed:
                    codes.add(str(closed.rcvd.code if closed.rcvd else "no close frame"))
        return f"{name}: close {', '.join(sorted(codes))}; {sockets} sockets"

    return asyncio.run(attack())


def attacks(new_key: Callable[[], dict[str, str]], secret: str) -> list[Attack]:
    """The attacks; each one with a key has a key (and so a rate-limit window) of its own."""
    search = json.dumps(
        {
            "query": "query($s: String) { contacts(search: $s) { totalCount } }",
            "variables": {"s": "a" * 900_000},
        }
    )
    # The same field 700 times (705 tokens), and the same selection 700 times (2,800 tokens:
    # over the token limit).
    repeated = "{ dashboard { " + " ".join(["contactCount"] * 700) + " } } #%d"
    selections = "{ " + " ".join(["dashboard { contactCount }"] * 700) + " } #%d"
    costly = json.dumps(
        {
            "query": "query($n: Int = 100) { messages(first: $n) { nodes { campaign "
            "{ messages(first: $n) { nodes { campaign { messages(first: $n) "
            "{ nodes { id } } } } } } } } }"
        }
    )
    nested: Any = 1
    for _ in range(600):
        nested = [nested]
    deep = json.dumps({"query": "query($v: [Int]) { version }", "variables": {"v": nested}})
    nul = json.dumps(
        {
            "query": "query($s: String) { contacts(search: $s) { totalCount } }",
            "variables": {"s": "a\u0000b"},
        }
    )
    name = json.dumps(
        {
            "query": "mutation($n: String!) { createContact(input: "
            '{phone: "+33612340000", name: $n}) { __typename } }',
            "variables": {"n": "x" * 900_000},
        }
    )
    webhook = json.dumps(
        {
            "entry": [
                {
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "statuses": [
                                    1,
                                    {"id": "w\u0000", "status": "read", "timestamp": 1e20},
                                    {"id": "w", "status": "failed", "errors": "boom"},
                                ]
                            },
                        }
                    ]
                }
            ]
        }
    )
    import_rows = json.dumps(
        {
            "query": "mutation($r: [ContactImportRow!]!) "
            "{ importContacts(input: {rows: $r}) { __typename } }",
            "variables": {"r": [{"phone": "1"}] * 70_000},
        },
        separators=(",", ":"),
    )
    webhook_headers = {"X-Hub-Signature-256": sign(secret, webhook.encode())}
    tokens = (
        'wrk.headers["Authorization"] = nil\n'
        + _post('{"query":"{ version }"}', {})
        + """
request = function()
  local token = "hk_" .. string.format("%043d", math.random(1, 2^31))
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. token})
end
"""
    )
    search_key, cost_key, nul_key, admin = new_key(), new_key(), new_key(), new_key()
    repeats_key, selections_key, import_key = new_key(), new_key(), new_key()
    bogus = {"Authorization": "Bearer hk_" + "0" * 43}
    return [
        Attack("900 KB search (key)", _post(search, search_key), sample=(search, search_key)),
        _new_text_each_time("700 repeats, new text each time, no key", repeated, {}),
        _new_text_each_time("700 repeats, new text each time (key)", repeated, repeats_key),
        _got_new_text_each_time("700 repeats over GET, new text each time, no key", repeated),
        _new_text_each_time("700 repeated selections, new text each time, no key", selections, {}),
        _new_text_each_time(
            "700 repeated selections, new text each time (key)", selections, selections_key
        ),
        Attack(
            "cost bomb through a declared default",
            _post(costly, cost_key),
            sample=(costly, cost_key),
        ),
        Attack(
            "a new random bearer token per request",
            tokens,
            sample=('{"query":"{ version }"}', bogus),
        ),
        Attack("variables nested 600 deep, no key", _post(deep, {}), sample=(deep, {})),
        Attack("NUL byte in search (key)", _post(nul, nul_key), sample=(nul, nul_key)),
        Attack("900 KB contact name (admin)", _post(name, admin), sample=(name, admin)),
        Attack(
            "70,000 import rows in 1 MB, no key",
            _post(import_rows, {}),
            sample=(import_rows, {}),
        ),
        Attack(
            "70,000 import rows in 1 MB (admin)",
            _post(import_rows, import_key),
            sample=(import_rows, import_key),
        ),
        Attack(
            "signed malformed webhook",
            _post(webhook, webhook_headers),
            path="/webhooks/whatsapp",
            sample=(webhook, webhook_headers),
        ),
        Attack("40 slowloris connections", "", _slowloris_for),
        Attack("8 MB request headers", "", _big_headers_for),
        Attack("WebSocket frame [1]", "", _websocket_for),
        Attack("WebSocket 1 MB connection_init, no key", "", _websocket_megabyte_for),
    ]


_HOLD_S = 5


def _slowloris_for(url: str) -> str:
    return _slowloris(url, _HOLD_S)


def _big_headers_for(url: str) -> str:
    return _big_headers(url, _HOLD_S)


def _websocket_for(url: str) -> str:
    return _websocket_frames(url, _HOLD_S, "frame [1]", "[1]")


def _websocket_megabyte_for(url: str) -> str:
    # Just under the bound on a request body (HERALD_REQUEST_MAX_BYTES).
    init = {"type": "connection_init", "payload": {"padding": "x" * ((1 << 20) - 100)}}
    return _websocket_frames(url, _HOLD_S, "1 MB connection_init", json.dumps(init))


@contextmanager
def _in_background(action: Callable[[], Any]) -> Iterator[list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(action()), daemon=True)
    thread.start()
    try:
        yield result
    finally:
        thread.join()


def _answer(url: str, attack: Attack) -> str:
    """How the server answers one request of the attack: status and GraphQL error code."""
    if attack.sample is None:
        return ""
    body, headers = attack.sample
    if attack.method == "GET":
        response = httpx.get(url + body, headers=headers, timeout=30)
    else:
        response = httpx.post(
            url + attack.path,
            content=body.encode(),
            headers={"Content-Type": "application/json", **headers},
            timeout=30,
        )
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        errors = []
    codes = sorted({str((e.get("extensions") or {}).get("code")) for e in errors})
    return f"{response.status_code} {' '.join(codes)}".strip()


def measure(url: str, probe: str, attack: Attack, seconds: int) -> list[object]:
    server = server_process(url)
    target = url + attack.path
    if attack.action is None:
        sample = _answer(url, attack)  # before the flood fills the attack's window
        before = cpu_seconds(server)
        alone = _wrk(target, attack.lua, seconds, 2)
        per_request_ms = (cpu_seconds(server) - before) * 1000 / max(1, alone.requests)
        with _in_background(lambda: _wrk(target, attack.lua, seconds + 1, 2)) as flood:
            during = _wrk(url + "/graphql", probe, seconds, 2)
        load = flood[0]
        refused = load.non_2xx / max(1, load.requests)
        answered = (
            f"{sample}; flood {load.requests / load.seconds:,.0f} req/s, {refused:.0%} non-2xx"
        )
        cost = f"{per_request_ms:.2f} ms"
    else:
        before = cpu_seconds(server)
        with _in_background(lambda: attack.action(url)) as outcome:  # type: ignore[misc]
            during = _wrk(url + "/graphql", probe, seconds, 2)
        answered = outcome[0]
        cost = f"{(cpu_seconds(server) - before) * 1000:.0f} ms in all"
    return [attack.name, answered, cost, f"{during.p50_ms:.1f}", f"{during.p99_ms:.1f}"]


# A frontend's read/write mix: three page reads to one contact rename.
_MIX = """
local reads = {READS}
local write = {WRITE}
local n = 0
request = function()
  n = n + 1
  if n % 4 == 0 then
    return wrk.format(nil, nil, nil, string.format(write, n % 2000 + 1, n))
  end
  return wrk.format(nil, nil, nil, reads[n % #reads + 1])
end
"""
_READS = [
    "{ campaigns(first: 5) { nodes { id name messages(first: 10) { nodes { status contact "
    "{ phone } } } } } }",
    "{ contacts(first: 20) { nodes { id name phone } } }",
    "{ dashboard { contactCount campaignCount } }",
]
_WRITE = (
    '{"query":"mutation { updateContact(id: \\"%d\\", input: {name: \\"Mix %d\\"}) '
    '{ __typename } }"}'
)


def _mix(headers: dict[str, str]) -> str:
    reads = "{" + ", ".join(lua_string(json.dumps({"query": q})) for q in _READS) + "}"
    return _post("", headers) + _MIX.replace("{READS}", reads).replace(
        "{WRITE}", lua_string(_WRITE)
    )


def _shed_times(url: str) -> list[float]:
    """Milliseconds each of 40 light requests took when it was shed (503), sent one by one
    on a new connection, from connecting to the answer's last byte (a plain socket: an HTTP
    client's own setup would be counted too)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    body = b'{"query":"{ version }"}'
    request = (
        b"POST /graphql HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (host.encode(), len(body), body)
    )
    found = []
    time.sleep(1)  # the load is on by then
    for _ in range(40):
        started = time.perf_counter()
        with socket.create_connection((host, int(port)), timeout=30) as sock:
            sock.sendall(request)
            answer = b""
            while chunk := sock.recv(65536):  # to the end of the answer's body
                answer += chunk
                head, _, body = answer.partition(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
                if length and len(body) >= int(length[1]):
                    break
        if answer.startswith(b"HTTP/1.1 503"):
            found.append((time.perf_counter() - started) * 1000)
        time.sleep(0.05)
    return found


def shedding(database: str, headers: dict[str, str], seconds: int, rounds: int) -> str:
    """The mix at 16 and at 64 connections (rate limiting off), in alternating rounds (a
    5 s round moves by up to a third with whatever else the machine does): requests answered
    2xx per second, and how long a shed request waited for its 503; medians of the rounds."""
    runs: dict[int, list[Run]] = {16: [], 64: []}
    shed_ms: dict[int, list[float]] = {16: [], 64: []}
    with running_server(database, 1) as url:
        script = _mix(headers)
        for _ in range(rounds):
            for connections in (16, 64):
                with _in_background(lambda: _shed_times(url)) as sampled:
                    runs[connections].append(_wrk(url + "/graphql", script, seconds, connections))
                shed_ms[connections] += sampled[0]
    served = {
        connections: [(run.requests - run.non_2xx) / run.seconds for run in each]
        for connections, each in runs.items()
    }
    rows: list[list[object]] = []
    for connections, each in runs.items():
        found = shed_ms[connections]
        shed = (
            f"{median(found):.1f} / {max(found):.1f} ms ({len(found)} of {40 * rounds})"
            if found
            else "-"
        )
        rounds_seen = ", ".join(f"{value:,.0f}" for value in served[connections])
        rows.append(
            [
                connections,
                f"{median(served[connections]):,.1f} ({rounds_seen})",
                f"{median([run.non_2xx for run in each]):,.0f}",
                f"{median([run.p99_ms for run in each]):.0f}",
                shed,
            ]
        )
    names = [
        "connections",
        "2xx req/s, median (rounds)",
        "non-2xx per round",
        "p99 ms",
        "503 median / slowest (sampled)",
    ]
    ratio = median(served[64]) / median(served[16])
    return table(names, rows) + f"\n\n64 against 16 connections: {ratio:.2f}x the 2xx throughput"


def forget_rate_limits() -> None:
    client = redis.Redis.from_url(redis_url())
    keys = list(client.scan_iter(RATE_LIMIT_PREFIX + "*", count=1000))
    if keys:
        client.delete(*keys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="each attack's duration")
    parser.add_argument("--only", help="attacks whose name contains this text")
    parser.add_argument("--no-shedding", action="store_true", help="skip the 16/64 mix")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the 16/64 mix")
    args = parser.parse_args()
    database = prepare(Scale(2_000, 5, 200))
    forget_rate_limits()  # an earlier run's windows, the no-key attacks' address among them
    secret = "bench-app-secret"
    # Rate limiting on (the other benches turn it off), 100 requests/s per window: the
    # probe, paced at 20 requests/s per connection, stays inside its own.
    with running_server(
        database, 1, HERALD_WHATSAPP_APP_SECRET=secret, HERALD_RATE_LIMIT_REQUESTS="6000"
    ) as url:
        probe_key = authorization(database)  # the probe's own window
        probe = (
            _post(json.dumps({"query": PROBE}), probe_key) + "\ndelay = function() return 50 end"
        )
        quiet = _wrk(url + "/graphql", probe, args.seconds, 2)
        rows: list[list[object]] = [
            ["(quiet server)", "-", "-", f"{quiet.p50_ms:.1f}", f"{quiet.p99_ms:.1f}"]
        ]

        def known_key() -> dict[str, str]:
            """A new admin key, used once now: from then on it counts only in its own window,
            not in the address's that the floods without a key fill."""
            key = authorization(database)
            httpx.post(url + "/graphql", json={"query": PROBE}, headers=key)  # needs a key
            return key

        for attack in attacks(known_key, secret):
            if args.only and args.only not in attack.name:
                continue
            rows.append(measure(url, probe, attack, args.seconds))
            print(rows[-1], flush=True)
    headers = ["attack", "answered", "server CPU per request", "probe p50 ms", "probe p99 ms"]
    print(table(headers, rows))
    if not args.no_shedding:
        print()
        print(shedding(database, probe_key, args.seconds, args.rounds))


if __name__ == "__main__":
    main()
